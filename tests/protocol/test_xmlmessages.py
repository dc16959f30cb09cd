"""XML bodies: the error mapping (one table), defused parsing, render/parse round trips, ETag rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_cos.protocol import xmlmessages as xm
from airflow_provider_cos.protocol.errors import (
    XML_ERROR_TABLE,
    CosAuthError,
    CosError,
    CosNotFoundError,
    CosProtocolError,
    CosServerError,
    CosSessionError,
    CosSignatureExpiredError,
    CosThrottledError,
    error_from_xml,
    xml_error,
)

VECTORS = json.loads((Path(__file__).resolve().parent / "xml_vectors.json").read_text())


def _error_body(code: str, message: str = "m") -> bytes:
    return xm.ErrorBody(code, message, "b-1250000000.cos.ap-x.myqcloud.com/k", "RID", "TID").render()


@pytest.mark.parametrize(
    ("status", "code", "exc_type", "retryable"),
    [
        (503, "SlowDown", CosThrottledError, True),
        (500, "InternalError", CosServerError, True),
        (503, "ServiceUnavailable", CosServerError, True),
        (503, None, CosThrottledError, True),  # a 503 without a known code
        (502, None, CosServerError, True),
        (403, "AccessDenied", CosAuthError, False),
        (403, "SignatureDoesNotMatch", CosAuthError, False),
        (404, "NoSuchBucket", CosNotFoundError, False),
        (404, "NoSuchKey", CosNotFoundError, False),
        (404, "NoSuchUpload", CosSessionError, False),
        (403, "RequestTimeTooSkewed", CosSignatureExpiredError, True),  # re-sign and send again once
        (404, None, CosNotFoundError, False),  # HEAD: no body
        (400, "SomethingNew", CosError, False),
    ],
)
def test_error_mapping(status: int, code: str | None, exc_type: type[CosError], retryable: bool) -> None:
    body = _error_body(code) if code else b""
    err = xm.error_from_response(status, [("x-cos-request-id", "HDR")], body, operation="PutObject", path="k")
    assert type(err) is exc_type
    assert err.retryable is retryable
    assert err.error_code == code and err.status == status
    assert err.request_id == ("RID" if code else "HDR")
    if code:
        assert code in str(err) and "op=PutObject" in str(err)


def test_every_table_row_renders_and_maps_back() -> None:
    assert len({row.code for row in XML_ERROR_TABLE}) == len(XML_ERROR_TABLE)
    for row in XML_ERROR_TABLE:
        parsed = xm.parse_error_body(_error_body(row.code, row.message))
        assert parsed is not None and parsed.code == row.code and parsed.message == row.message
        err = xm.error_from_response(row.http_status, [], _error_body(row.code, row.message))
        assert type(err) is row.exc_type and err.retryable is row.retryable
        assert type(xml_error(row.code)) is row.exc_type and xml_error(row.code).status == row.http_status
    assert error_from_xml("RequestTimeTooSkewed", None, 403).retryable


def test_error_body_form() -> None:
    body = _error_body("NoSuchKey", 'a "quoted" <message> & more')
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    parsed = xm.parse_error_body(b"\n  " + body)
    assert parsed == xm.ErrorBody(
        "NoSuchKey", 'a "quoted" <message> & more', "b-1250000000.cos.ap-x.myqcloud.com/k", "RID", "TID"
    )
    assert xm.parse_error_body(b"") is None
    assert xm.parse_error_body(b"<html>bad gateway</html") is None
    assert xm.parse_error_body(xm.InitiatedUpload("b", "k", "u").render()) is None


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Error><Code>&lol2;</Code></Error>"""
EXTERNAL = (
    b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><Error><Code>&e;</Code></Error>"""
)


@pytest.mark.parametrize("body", [BOMB, EXTERNAL], ids=["expansion", "external"])
def test_entities_and_dtds_are_refused(body: bytes) -> None:
    with pytest.raises(CosProtocolError, match="DTDs and entities are not accepted") as refused:
        xm.parse_xml(body, operation="GetBucket")
    assert not refused.value.retryable
    assert xm.parse_error_body(body) is None
    err = xm.error_from_response(500, [], body)
    assert type(err) is CosServerError  # classified by status, the body's entity never expanded


def test_unparseable_is_retryable_protocol_error() -> None:
    with pytest.raises(CosProtocolError, match="does not parse") as e:
        xm.parse_xml(b"<ListBucketResult><Name>x</Na")
    assert e.value.retryable
    with pytest.raises(CosProtocolError, match="empty XML body"):
        xm.parse_xml(b"   \r\n ")


def test_complete_result_and_error_inside_200() -> None:
    done = xm.CompletedUpload("http://b/k", "b-1", "文件 a+b", '"aa259a62513358f69e98e72e59856d88-3"')
    keepalive = b" " * 300 + b"\n" + done.render(declaration=False)
    assert xm.parse_complete_result(200, keepalive) == done
    assert xm.parse_complete_result(200, done.render()) == done  # fast mode: declaration at start
    assert b'xmlns="http://www.qcloud.com/document/product/436/7751"' in done.render()
    failed = b"      " + xm.ErrorBody("InternalError", "merge failed", "r", "RID").render_after_whitespace()
    with pytest.raises(CosServerError, match="InternalError: merge failed") as e:
        xm.parse_complete_result(200, failed, path="k")
    assert e.value.retryable and e.value.status == 200 and e.value.operation == "CompleteMultipartUpload"
    with pytest.raises(CosProtocolError, match="empty <ETag>"):
        xm.parse_complete_result(200, xm.CompletedUpload("l", "b", "k", "").render())


def test_complete_request_matches_the_sdk_body() -> None:
    sdk = next(v for v in VECTORS["signature"] if v["name"] == "sdk_complete_multipart_upload")
    ours = xm.render_complete_request([xm.CompletePart(1, "108f528eb63b65e734f27ae331f5ffaa")])
    assert ours == sdk["request_body"].encode()
    assert xm.parse_complete_request(sdk["request_body"].encode()) == [
        xm.CompletePart(1, "108f528eb63b65e734f27ae331f5ffaa")
    ]
    unquoted = (
        b"<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>abc</ETag></Part></CompleteMultipartUpload>"
    )
    assert xm.parse_complete_request(unquoted) == [xm.CompletePart(2, "abc")]
    with pytest.raises(CosProtocolError, match="no <Part>"):
        xm.parse_complete_request(b"<CompleteMultipartUpload/>")
    with pytest.raises(CosProtocolError, match="not an integer"):
        xm.parse_complete_request(
            b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>"
        )


@pytest.mark.parametrize("encoding", [None, "url"])
def test_object_listing_round_trip(encoding: str | None) -> None:
    listing = xm.ObjectListing(
        name="b-1250000000",
        prefix="文档/2024 Q1/",
        marker="文档/2024 Q1/a+b.txt",
        max_keys=2,
        delimiter="/",
        is_truncated=True,
        next_marker="文档/2024 Q1/c%d.txt",
        contents=(
            xm.ObjectEntry(
                "文档/2024 Q1/c%d.txt",
                "2019-05-27T11:26:14.000Z",
                '"f173c1199e3d3b53dd91223cae16fb42"',
                37,
                owner_id="1250000000",
            ),
        ),
        common_prefixes=("文档/2024 Q1/sub dir/",),
        encoding_type=encoding,
    )
    body = listing.render()
    if encoding:
        assert b"%E6%96%87%E6%A1%A3" in body and "文档".encode() not in body
    assert b"&quot;f173c1199e3d3b53dd91223cae16fb42&quot;" in body
    assert xm.parse_object_listing(body) == listing
    assert listing.next_page_marker() == "文档/2024 Q1/c%d.txt"
    last = xm.parse_object_listing(xm.ObjectListing("b", "", "", 1000, None, False, "", (), ()).render())
    assert last.next_page_marker() is None and last.delimiter is None


def test_listing_variants_seen_in_the_wild() -> None:
    go_style = (
        b"<ListBucketResult><Name>b</Name><Prefix/><Marker/><MaxKeys>1</MaxKeys><IsTruncated>true"
        b"</IsTruncated><CommonPrefixs><Prefix>a/</Prefix></CommonPrefixs></ListBucketResult>"
    )
    parsed = xm.parse_object_listing(go_style)
    assert parsed.common_prefixes == ("a/",) and parsed.next_page_marker() == "a/"
    old = (
        b"<ListMultipartUploadsResult><Bucket>b</Bucket><IsTruncated>false</IsTruncated>"
        b"<Upload><Key>k</Key><UploadID>U1</UploadID><Initiated>x</Initiated></Upload>"
        b"</ListMultipartUploadsResult>"
    )
    assert xm.parse_upload_listing(old).uploads[0].upload_id == "U1"
    parts_go = (
        b"<ListPartsResult><Encoding-type>url</Encoding-type><Key>a%20b</Key><UploadId>U</UploadId>"
        b"<IsTruncated>false</IsTruncated></ListPartsResult>"
    )
    assert xm.parse_part_listing(parts_go).key == "a b"


def test_part_listing_round_trip_and_paging() -> None:
    listing = xm.PartListing(
        bucket="b-1",
        key="文件夹/my file+v1.bin",
        upload_id="U",
        part_number_marker=0,
        max_parts=2,
        is_truncated=True,
        next_part_number_marker=2,
        parts=(
            xm.PartEntry(1, "2020-03-25T10:07:14.000Z", '"39270a968a357d24207e9911162507eb"', 1048576),
            xm.PartEntry(2, "2020-03-25T10:07:15.000Z", '"d899fbd1e06109ea2e4550f5751c88d6"', 1048576),
        ),
        encoding_type="url",
        owner_id="1",
        initiator_id="2",
    )
    parsed = xm.parse_part_listing(listing.render())
    assert parsed == listing and parsed.next_page_marker() == 2
    done = xm.PartListing("b", "k", "U", 2, 1000, False, 0, ())
    assert xm.parse_part_listing(done.render()).next_page_marker() is None


def test_upload_listing_round_trip_and_paging() -> None:
    listing = xm.UploadListing(
        bucket="b-1",
        prefix="p/",
        delimiter=None,
        key_marker="",
        upload_id_marker="",
        max_uploads=1,
        is_truncated=True,
        next_key_marker="p/a b",
        next_upload_id_marker="U1",
        uploads=(xm.UploadEntry("p/a b", "U1", "2017-06-12T10:13:05.000Z", initiator_id="x"),),
        common_prefixes=("p/q/",),
        encoding_type="url",
    )
    parsed = xm.parse_upload_listing(listing.render())
    assert parsed == listing and parsed.next_page_markers() == ("p/a b", "U1")


def test_initiate_result() -> None:
    up = xm.InitiatedUpload(
        "b-1", "文件 a", "1585130821cbb7df1d11846c073ad648e8f33b087cec2381df437acdc833cf654b9ecc6361"
    )
    assert xm.parse_initiate(up.render()) == up
    with pytest.raises(CosProtocolError, match="lacks <UploadId>"):
        xm.parse_initiate(b"<InitiateMultipartUploadResult><Key>k</Key></InitiateMultipartUploadResult>")
    with pytest.raises(CosProtocolError, match="expected <InitiateMultipartUploadResult>"):
        xm.parse_initiate(b"<Other/>")


@pytest.mark.parametrize("vector", VECTORS["multipart_etag"], ids=lambda v: v["name"])
def test_multipart_etag_vectors(vector: dict) -> None:
    assert xm.multipart_etag(vector["part_md5_hex"]) == vector["expected"]
    assert xm.is_multipart_etag(vector["expected"])


def test_etag_rules() -> None:
    digest = next(v for v in VECTORS["crc64"] if v["name"] == "doc_put_object_body")
    etag = xm.etag_of(digest["input_ascii"].encode())
    assert etag == f'"{digest["md5_hex"]}"' and xm.is_md5_etag(etag) and not xm.is_multipart_etag(etag)
    assert xm.etag_matches_md5(etag, digest["md5_hex"].upper())
    assert xm.unquote_etag(' "abc" ') == "abc" and xm.unquote_etag("abc") == "abc"
    assert not xm.etag_matches_md5('"aa259a62513358f69e98e72e59856d88-3"', "aa259a62513358f69e98e72e59856d88")
    with pytest.raises(ValueError, match="at least one part"):
        xm.multipart_etag([])
