"""XML operations, sans I/O: requests built by prepare_* sign exactly as the official SDK's (vectors),
are accepted by the verifier as a server would receive them, and process_* map answers and errors."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from airflow_provider_cos.protocol import crc64 as c
from airflow_provider_cos.protocol import xmlmessages as xm
from airflow_provider_cos.protocol import xmlsigning as xs
from airflow_provider_cos.protocol.errors import (
    CosConfigError,
    CosIntegrityError,
    CosInvalidRequestError,
    CosNotFoundError,
    CosPathError,
    CosProtocolError,
    CosServerError,
    CosSessionError,
    CosThrottledError,
)
from airflow_provider_cos.protocol.xmloperations import XML, XmlRequest, XmlTarget, encode_key, encode_xml_request

VECTORS = {
    v["name"]: v for v in json.loads((Path(__file__).resolve().parent / "xml_vectors.json").read_text())["signature"]
}
UPLOAD_ID = "1585130821cbb7df1d11846c073ad648e8f33b087cec2381df437acdc833cf654b9ecc6361"
KEY = "文件夹/my file+v1.bin"
TARGET = XmlTarget("examplebucket-1250000000", "ap-guangzhou")


def _signer(vector: dict, token: str | None = None) -> xs.XmlSigner:
    start = int(vector["key_time"].split(";")[0])
    return xs.XmlSigner(
        xs.XmlCredentials(vector["secret_id"], vector["secret_key"], token), validity=10000, clock=lambda: start + 60
    )


CASES = {
    "sdk_initiate_multipart_upload": lambda: XML.prepare_initiate(
        KEY, headers={"Content-Type": "application/octet-stream"}
    ),
    "sdk_upload_part": lambda: XML.prepare_upload_part(
        KEY, upload_id=UPLOAD_ID, part_number=1, data_len=13, content_md5="EI9SjrY7Zec08nrjMfX/qg=="
    ),
    "sdk_list_parts": lambda: XML.prepare_list_parts(KEY, upload_id=UPLOAD_ID),
    "sdk_complete_multipart_upload": lambda: XML.prepare_complete(
        KEY, upload_id=UPLOAD_ID, parts=[xm.CompletePart(1, '"108f528eb63b65e734f27ae331f5ffaa"')]
    ),
    "sdk_abort_multipart_upload": lambda: XML.prepare_abort(KEY, upload_id=UPLOAD_ID),
    "sdk_list_objects": lambda: XML.prepare_get_bucket(
        prefix="文档/2024 Q1/", delimiter="/", marker="文档/2024 Q1/a+b.txt", max_keys=100
    ),
    "sdk_list_multipart_uploads": lambda: XML.prepare_list_uploads(prefix=KEY),
    "sdk_put_object_temp_credentials": lambda: XML.prepare_put_object(
        "docs/报告 2024 (final)+v2.txt",
        16,
        content_md5="7o3pGNBWQBRbGPcPTDqmAg==",
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            "Cache-Control": "max-age=60",
            "x-cos-storage-class": "STANDARD_IA",
        },
        metadata={"Author": "Zhang San", "Dept": "R&D/存储"},
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_prepared_requests_sign_like_the_sdk(name: str) -> None:
    vector = VECTORS[name]
    token = vector["headers"].get("x-cos-security-token")
    request: XmlRequest = CASES[name]()
    http = encode_xml_request(TARGET, request, _signer(vector, token))
    assert http.headers["Authorization"] == vector["expected"]["authorization"]
    assert request.uri_pathname == vector["uri_pathname"]
    if "request_url" in vector:  # same resource and parameters as the SDK's URL
        ours, sdk = urlsplit(http.url), urlsplit(vector["request_url"])
        assert (ours.netloc, ours.path) == (sdk.netloc, sdk.path)
        assert parse_qsl(ours.query, keep_blank_values=True) == parse_qsl(sdk.query, keep_blank_values=True)
    if "request_body" in vector:
        assert http.body == vector["request_body"].encode()


def test_encoded_request_is_accepted_by_the_verifier() -> None:
    target = XmlTarget("b-1250000000", "ap-beijing", endpoint="http://127.0.0.1:9")
    signer = xs.XmlSigner(xs.XmlCredentials("AKID", "key", "tok"), clock=lambda: 1_700_000_000)
    for request in [
        XML.prepare_put_object("./a b/+%~中.txt", 3),
        XML.prepare_get_object("k", start=5, end=9),
        XML.prepare_list_uploads(prefix="a b+"),
        XML.prepare_get_bucket(marker="%2B"),
    ]:
        http = encode_xml_request(target, request, signer, extra_headers={"x-cos-sdk-retry": "true"})
        split = urlsplit(http.url)
        assert split.netloc == "127.0.0.1:9" and http.headers["Host"] == "b-1250000000.cos.ap-beijing.myqcloud.com"
        params = parse_qsl(split.query, keep_blank_values=True)
        sig = xs.find_signature(http.headers, params)
        assert sig is not None and "x-cos-sdk-retry" in sig.header_list and "x-cos-security-token" in sig.header_list
        xs.verify(
            sig,
            {"AKID": "key"}.get,
            method=http.method,
            uri_pathname=xs.uri_pathname_of(split.path),
            params=params,
            headers=http.headers,
            now=1_700_000_000,
            token_lookup={"AKID": "tok"}.get,
        )


def test_keys_and_targets_are_validated() -> None:
    for bad in ["", "/lead", "\\lead", "a%0Ab", "x" * 851, "a\x1bb"]:
        with pytest.raises(CosPathError):
            XML.prepare_head_object(bad)
    assert XML.prepare_head_object("键" * 283).key  # 849 bytes
    assert encode_key("a/./b/../c d+") == "/a/.%2Fb/..%2Fc%20d%2B"
    for bucket in ["Bad-125", "nobucketappid", "-x-1"]:
        with pytest.raises(CosConfigError, match="bucket"):
            XmlTarget(bucket, "ap-beijing")
    with pytest.raises(CosConfigError, match="region"):
        XmlTarget("b-1", "ap beijing")
    with pytest.raises(CosConfigError, match="endpoint"):
        XmlTarget("b-1", "ap-beijing", endpoint="http://h/path")
    with pytest.raises(CosInvalidRequestError, match="partNumber"):
        XML.prepare_upload_part("k", upload_id="U", part_number=10001, data_len=1)
    with pytest.raises(CosInvalidRequestError, match="max-keys"):
        XML.prepare_get_bucket(max_keys=1001)
    with pytest.raises(CosInvalidRequestError, match=r"parts 1\.\.N"):
        XML.prepare_complete("k", upload_id="U", parts=[xm.CompletePart(2, "e"), xm.CompletePart(1, "e")])
    with pytest.raises(CosConfigError, match="not an object header"):
        XML.prepare_put_object("k", 1, headers={"Authorization": "x"})
    with pytest.raises(CosConfigError, match="metadata name"):
        XML.prepare_put_object("k", 1, metadata={"a_b": "x"})


def test_body_less_writes_send_content_length_zero() -> None:
    assert XML.prepare_initiate("k").content_length == 0
    assert XML.prepare_abort("k", upload_id="U").content_length == 0
    assert XML.prepare_head_object("k").content_length is None
    assert XML.prepare_put_object("k", 7).content_length == 7


CRC_BODY = b"[Object Content]"
CRC = 16749565679157681890


def test_put_and_part_results_check_the_crc() -> None:
    headers = [("ETag", '"ee8de918d05640145b18f70f4c3aa602"'), ("x-cos-hash-crc64ecma", str(CRC))]
    assert XML.process_put_object(200, headers, b"", key="k", crc64=c.crc64(CRC_BODY)).crc64 == CRC
    with pytest.raises(CosIntegrityError, match="mismatch") as bad:
        XML.process_put_object(200, headers, b"", key="k", crc64=CRC ^ 1)
    assert bad.value.retryable
    part = XML.process_upload_part(200, headers, b"", key="k", part_number=3, crc64=CRC)
    assert (part.part_number, part.etag) == (3, '"ee8de918d05640145b18f70f4c3aa602"')
    assert XML.process_put_object(200, headers[:1], b"", crc64=CRC).crc64 is None  # old objects: no CRC
    with pytest.raises(CosProtocolError, match="x-cos-hash-crc64ecma"):
        XML.process_put_object(200, [*headers[:1], ("x-cos-hash-crc64ecma", "-1")], b"")
    with pytest.raises(CosProtocolError, match="lacks header ETag"):
        XML.process_upload_part(200, [], b"", part_number=1)


def test_head_and_get() -> None:
    headers = [
        ("Content-Length", "16"),
        ("ETag", '"e"'),
        ("Last-Modified", "Mon, 27 May 2019 11:26:14 GMT"),
        ("Content-Type", "text/plain"),
        ("x-cos-hash-crc64ecma", str(CRC)),
        ("x-cos-meta-Author", "Z"),
    ]
    head = XML.process_head_object(200, headers, b"", key="k")
    assert (head.size, head.crc64, head.metadata) == (16, CRC, {"author": "Z"})
    with pytest.raises(CosNotFoundError) as missing:
        XML.process_head_object(404, [("x-cos-request-id", "R")], b"", key="k")
    assert missing.value.request_id == "R" and not missing.value.retryable
    whole = XML.process_get_object(200, headers, CRC_BODY, key="k")
    assert (whole.start, whole.end, whole.total, whole.data) == (0, 15, 16, CRC_BODY)
    req = XML.prepare_get_object("k", start=8, end=14)
    assert dict(req.headers)["Range"] == "bytes=8-14"
    ranged = [("Content-Length", "7"), ("Content-Range", "bytes 8-14/16"), ("x-cos-hash-crc64ecma", str(CRC))]
    part = XML.process_get_object(206, ranged, b"Content", key="k", start=8)
    assert (part.start, part.end, part.total, part.head.crc64) == (8, 14, 16, CRC)
    with pytest.raises(CosProtocolError, match="Content-Length"):
        XML.process_get_object(206, ranged, b"Conten", start=8)
    with pytest.raises(CosProtocolError, match="does not match"):
        XML.process_get_object(206, ranged, b"Content", start=7)
    with pytest.raises(CosProtocolError, match="whole object"):
        XML.process_get_object(200, headers, CRC_BODY, start=8)
    assert dict(XML.prepare_get_object("k", start=5).headers)["Range"] == "bytes=5-"
    err = xm.ErrorBody("InvalidRange", "The requested range is not satisfiable.").render()
    with pytest.raises(CosInvalidRequestError, match="InvalidRange"):
        XML.process_get_object(416, [], err, start=99)


def test_listings_page_through() -> None:
    page = xm.ObjectListing(
        "b", "", "", 1, None, True, "a b", (xm.ObjectEntry("a b", "t", '"e"', 1),), (), encoding_type="url"
    )
    got = XML.process_get_bucket(200, [], page.render())
    assert got.next_page_marker() == "a b"
    assert dict(XML.prepare_get_bucket(marker=got.next_page_marker() or "").params)["marker"] == "a b"
    parts = xm.PartListing("b", "k", "U", 0, 1, True, 1, (xm.PartEntry(1, "t", '"e"', 5),))
    listed = XML.process_list_parts(200, [], parts.render(), key="k")
    nxt = XML.prepare_list_parts("k", upload_id="U", part_number_marker=listed.next_page_marker() or 0)
    assert dict(nxt.params)["part-number-marker"] == "1"
    ups = xm.UploadListing("b", "", None, "", "", 1, True, "k", "U1", (xm.UploadEntry("k", "U1", "t"),))
    markers = XML.process_list_uploads(200, [], ups.render()).next_page_markers()
    assert markers == ("k", "U1")
    assert (
        dict(XML.prepare_list_uploads(key_marker=markers[0], upload_id_marker=markers[1]).params)["upload-id-marker"]
        == "U1"
    )
    with pytest.raises(CosSessionError, match="NoSuchUpload"):
        XML.process_list_parts(404, [], xm.ErrorBody("NoSuchUpload", "gone").render(), key="k")


def test_initiate_complete_abort() -> None:
    up = XML.process_initiate(200, [], xm.InitiatedUpload("b", "k", "U").render(), key="k")
    assert up.upload_id == "U"
    whole = c.crc64_fold([(CRC, 16)])
    result = xm.CompletedUpload("l", "b", "k", '"x-1"')
    ok = XML.process_complete(
        200, [("x-cos-hash-crc64ecma", str(CRC))], b"  \n" + result.render(declaration=False), key="k", crc64=whole
    )
    assert ok.upload.etag == '"x-1"' and ok.crc64 == CRC
    inside = b" " * 10 + xm.ErrorBody("InternalError", "merge failed").render_after_whitespace()
    with pytest.raises(CosServerError, match="merge failed") as e:
        XML.process_complete(200, [], inside, key="k")
    assert e.value.retryable and e.value.status == 200
    with pytest.raises(CosIntegrityError, match="mismatch"):
        XML.process_complete(200, [("x-cos-hash-crc64ecma", "1")], result.render(), crc64=whole)
    with pytest.raises(CosThrottledError):
        XML.process_complete(503, [], xm.ErrorBody("SlowDown", "slow").render())
    XML.process_abort(204, [], b"", key="k")
    with pytest.raises(CosSessionError):
        XML.process_abort(404, [], xm.ErrorBody("NoSuchUpload", "no").render(), key="k")
    XML.process_delete_object(204, [], b"", key="k")
