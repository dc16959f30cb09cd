"""Prepare/process pairs of both dialects, sans-I/O: requests as bytes, answers as bytes."""

from __future__ import annotations

import json

import pytest

from airflow_provider_cos.protocol import errors
from airflow_provider_cos.protocol.messages import (
    CosTarget,
    InstantUpload,
    SliceSession,
    encode_request,
    encode_request_head,
    parse_envelope,
)
from airflow_provider_cos.protocol.multipart import MultipartDecoder, PartData, PartStart, parse_boundary
from airflow_provider_cos.protocol.operations import V1, V2, dialect_for
from airflow_provider_cos.protocol.sha1parts import UploadPart

TARGET1 = CosTarget("http://127.0.0.1:8089", "v1", "1250000000", "bkt")
TARGET2 = CosTarget("http://127.0.0.1:8089", "v2", "1250000000", "bkt")
URLS = {"access_url": "http://a", "resource_path": "/1250000000/bkt/x.bin", "source_url": "http://s", "url": "http://u"}


def env(code: int = 0, data: object = None, message: str = "SUCCESS") -> bytes:
    return json.dumps({"code": code, "message": message, "data": data or {}}).encode()


def form_fields(http_body: bytes, content_type: str) -> dict[str, bytes]:
    dec = MultipartDecoder(parse_boundary(content_type))
    out: dict[str, bytes] = {}
    name = ""
    for ev in dec.feed(http_body):
        if isinstance(ev, PartStart):
            name = ev.name
            out[name] = b""
        elif isinstance(ev, PartData):
            out[name] += ev.data
    dec.close()
    return out


def test_dialect_for() -> None:
    assert dialect_for("v1") is V1 and dialect_for("v2") is V2
    with pytest.raises(errors.CosConfigError):
        dialect_for("v4")


def test_v1_init_request_and_answers() -> None:
    req = V1.prepare_slice_init(
        "/d/x.bin", filesize=3000000, sha="ab" * 20, slice_size=1 << 20, session="S1", insert_only=True, biz_attr="attr"
    )
    http = encode_request(TARGET1, req, "SIG")
    assert http.method == "POST"
    assert http.url == "http://127.0.0.1:8089/files/v1/1250000000/bkt/d/x.bin"
    assert http.headers["Authorization"] == "SIG"
    assert http.body is not None
    fields = form_fields(http.body, http.headers["Content-Type"])
    assert fields == {
        "op": b"upload_slice",
        "filesize": b"3000000",
        "sha": b"ab" * 20,
        "slice_size": b"1048576",
        "biz_attr": b"attr",
        "session": b"S1",
        "insertOnly": b"1",
    }
    got = V1.process_slice_init(200, env(data={"session": "S1", "offset": 2097152, "slice_size": 1048576}))
    assert got == SliceSession(session="S1", slice_size=1048576, offset=2097152)
    instant = V1.process_slice_init(200, env(data=URLS))
    assert isinstance(instant, InstantUpload) and instant.urls.resource_path == "/1250000000/bkt/x.bin"
    # v3.1 servers answer with url only
    assert isinstance(V1.process_slice_init(200, env(data={"url": "http://u"})), InstantUpload)


def test_v1_data_request_carries_bytes_and_completion_urls() -> None:
    req = V1.prepare_slice_data("/x.bin", session="S", offset=1048576, length=5)
    http = encode_request(TARGET1, req, "SIG", b"hello")
    assert http.body is not None
    fields = form_fields(http.body, http.headers["Content-Type"])
    assert fields == {"op": b"upload_slice", "session": b"S", "offset": b"1048576", "filecontent": b"hello"}
    ack = V1.process_slice_data(200, env(data={"session": "S", "offset": 1048576}))
    assert ack.offset == 1048576 and ack.urls is None
    done = V1.process_slice_data(200, env(data={"session": "S", "offset": 1048576, **URLS}))
    assert done.urls is not None and done.urls.access_url == "http://a"


@pytest.mark.parametrize("dialect", [V1, V2])
def test_encode_request_head_frames_exactly_the_bytes_of_encode_request(dialect: object) -> None:
    from airflow_provider_cos.protocol.operations import Dialect

    assert isinstance(dialect, Dialect)
    target = TARGET1 if dialect is V1 else TARGET2
    data = bytes(range(256)) * 40 + b"\r\n--B--\r\n"
    req = dialect.prepare_slice_data(
        "/d/x y.bin", session="S", offset=1048576, length=len(data), sha=None if dialect is V1 else "ab" * 20
    )
    whole = encode_request(target, req, "SIG", data, boundary_factory=lambda: "B0UND")
    head, form = encode_request_head(target, req, "SIG", boundary_factory=lambda: "B0UND")
    assert head.body is None
    assert (head.method, head.url, dict(head.headers)) == (whole.method, whole.url, dict(whole.headers))
    assert form.body(data) == whole.body
    buf = bytearray(4096 + len(data) + 1024)
    buf[4096 : 4096 + len(data)] = data
    assert bytes(form.frame_into(buf, 4096, len(data))) == whole.body


def test_encode_request_head_needs_a_binary_part() -> None:
    with pytest.raises(ValueError, match="file field"):
        encode_request_head(TARGET2, V2.prepare_stat("/a"), "SIG")
    with pytest.raises(ValueError, match="file field"):
        encode_request_head(TARGET2, V2.prepare_slice_finish("/x.bin", session="S", filesize=10, sha="cc" * 20), "SIG")


def test_encode_request_checks_data_length() -> None:
    req = V2.prepare_slice_data("/x.bin", session="S", offset=0, length=5)
    with pytest.raises(ValueError):
        encode_request(TARGET2, req, "SIG", b"toolong")
    with pytest.raises(ValueError):
        encode_request(TARGET2, req, "SIG")


def test_v2_init_with_uploadparts_and_answers() -> None:
    parts = [UploadPart(0, 1048576, "aa" * 20), UploadPart(1048576, 10, "bb" * 20)]
    req = V2.prepare_slice_init("/x.bin", filesize=1048586, sha="bb" * 20, slice_size=1048576, uploadparts=parts)
    http = encode_request(TARGET2, req, "SIG")
    assert http.url.startswith("http://127.0.0.1:8089/files/v2/1250000000/bkt/")
    assert http.body is not None
    fields = form_fields(http.body, http.headers["Content-Type"])
    assert fields["op"] == b"upload_slice_init"
    assert json.loads(fields["uploadparts"]) == [p.as_dict() for p in parts]
    assert fields["insertOnly"] == b"0"
    s = V2.process_slice_init(200, env(data={"session": "S", "slice_size": 524288, "serial_upload": 1}))
    assert s == SliceSession(session="S", slice_size=524288, serial_upload=True)
    with pytest.raises(errors.CosUnfinishedUploadError) as err:
        V2.process_slice_init(400, env(-4019, message="_ERROR_FILE_NOT_FINISH_UPLOAD"), path="/x.bin")
    assert err.value.code == -4019 and err.value.status == 400 and err.value.path == "/x.bin"


def test_v2_data_finish_list() -> None:
    ack = V2.process_slice_data(200, env(data={"session": "S", "offset": 0, "datalen": 10, "datamd5": "m"}))
    assert (ack.offset, ack.datalen, ack.datamd5) == (0, 10, "m")
    with pytest.raises(errors.CosProtocolError):
        V2.process_slice_data(200, env(data={"session": "S"}))
    fin = encode_request(TARGET2, V2.prepare_slice_finish("/x.bin", session="S", filesize=10, sha="cc" * 20), "SIG")
    assert fin.body is not None
    assert form_fields(fin.body, fin.headers["Content-Type"])["op"] == b"upload_slice_finish"
    assert V2.process_slice_finish(200, env(data=URLS)).url == "http://u"
    listing = V2.process_slice_list(
        200,
        env(
            data={
                "session": "S",
                "filesize": 3,
                "slice_size": 1,
                "sha": "dd_x",
                "listparts": [{"offset": 2, "datalen": 1}, {"offset": 0, "datalen": 1}],
            }
        ),
    )
    assert isinstance(listing, SliceSession)
    assert [p.offset for p in listing.received] == [0, 2]
    assert listing.sha == "dd" and listing.filesize == 3
    as_string = V2.process_slice_list(
        200, env(data={"session": "S", "slice_size": 1, "listparts": json.dumps([{"offset": 0, "datalen": 1}])})
    )
    assert isinstance(as_string, SliceSession) and len(as_string.received) == 1
    assert isinstance(V2.process_slice_list(200, env(data=URLS)), InstantUpload)
    with pytest.raises(errors.CosNotFoundError):
        V2.process_slice_list(404, b"<html>404</html>")


def test_common_ops() -> None:
    stat = encode_request(TARGET2, V2.prepare_stat("/a b.txt"), "SIG")
    assert stat.method == "GET" and stat.url.endswith("/a%20b.txt?op=stat") and stat.body is None
    info = V2.process_stat(
        200,
        env(
            data={
                "name": "a b.txt",
                "filesize": 10,
                "filelen": 4,
                "sha": "x",
                "ctime": "1700000000",
                "mtime": 1700000001,
            }
        ),
        path="/a b.txt",
    )
    assert not info.complete and info.filelen == 4 and info.ctime == 1700000000 and not info.is_folder
    folder = V2.process_stat(200, env(data={"biz_attr": "", "ctime": "1"}), path="/d/")
    assert folder.is_folder and not folder.complete
    with pytest.raises(errors.CosNotFoundError):
        V2.process_stat(400, env(-166, message="ERROR_CMD_COS_INDEX_ERROR"), path="/nope")

    delete = V2.prepare_delete("/a.txt")
    assert delete.signature == "once"
    http = encode_request(TARGET2, delete, "SIG")
    assert http.headers["Content-Type"] == "application/json" and http.body == b'{"op":"delete"}'
    with pytest.raises(errors.CosPathError):
        V2.prepare_delete("/")

    create = encode_request(TARGET1, V1.prepare_create_folder("d/e", biz_attr="b"), "SIG")
    assert create.url.endswith("/bkt/d/e/") and json.loads(create.body or b"") == {"op": "create", "biz_attr": "b"}
    assert V1.process_create_folder(200, env(data={"ctime": "1700000000"})) == 1700000000
    with pytest.raises(errors.CosAlreadyExistsError):
        V1.process_create_folder(400, env(-178, message="ERROR_CMD_COS_PATH_CONFLICT"))

    lst = encode_request(TARGET2, V2.prepare_list("/d/", num=2, context="c1", prefix="pre"), "SIG")
    assert lst.url.endswith("/bkt/d/pre?op=list&num=2&context=c1")
    page = V2.process_list(
        200,
        env(
            data={
                "context": "c2",
                "listover": False,
                "infos": [{"name": "f", "filesize": 1, "filelen": 1}, {"name": "sub"}],
            }
        ),
    )
    assert page.context == "c2" and not page.listover and page.infos[0].complete and page.infos[1].is_folder
    with pytest.raises(errors.CosPathError):
        V2.prepare_list("/d/", prefix="a/b")

    up = encode_request(TARGET1, V1.prepare_upload("/s.txt", 3, sha="ee" * 20), "SIG", b"abc")
    assert up.body is not None
    assert form_fields(up.body, up.headers["Content-Type"])["filecontent"] == b"abc"
    assert V1.process_upload(200, env(data=URLS)).source_url == "http://s"
    with pytest.raises(errors.CosProtocolError):
        V1.process_upload(200, env(data={}))


@pytest.mark.parametrize(
    ("status", "body", "exc", "retryable"),
    [
        (502, b"<html>bad gateway</html>", errors.CosServerError, True),
        (200, b"", errors.CosProtocolError, True),
        (200, b"not json", errors.CosProtocolError, True),
        (200, b'{"message": "no code"}', errors.CosProtocolError, True),
        (403, b'{"code": -96, "message": "ERROR_PROXY_AUTH_EXPIRED"}', errors.CosSignatureExpiredError, True),
        (403, b'{"code": -12345, "message": "ERROR_PROXY_AUTH_FAILED"}', errors.CosAuthError, False),
        (400, b'{"code": -71, "message": "too fast"}', errors.CosThrottledError, True),
        (400, b'{"code": -143, "message": "dir too fast"}', errors.CosThrottledError, True),
        (400, b'{"code": -180, "message": "ERROR_CMD_COS_INVALID_PATH"}', errors.CosPathError, False),
        (503, b'{"code": -5001, "message": "unknown"}', errors.CosServerError, True),
        (400, b'{"code": -5001, "message": "unknown"}', errors.CosError, False),
        (500, b'{"code": 0, "message": "SUCCESS"}', errors.CosServerError, True),
    ],
)
def test_envelope_classification(status: int, body: bytes, exc: type, retryable: bool) -> None:
    with pytest.raises(exc) as err:
        parse_envelope(status, body, op="stat", path="/p")
    assert err.value.retryable is retryable
    assert err.value.operation == "stat"


def test_error_table_is_consistent() -> None:
    codes = [s.code for s in errors.ERROR_TABLE]
    assert len(codes) == len(set(codes))
    names = [s.name for s in errors.ERROR_TABLE]
    assert len(names) == len(set(names))
    for spec in errors.ERROR_TABLE:
        assert issubclass(spec.exc_type, errors.CosError)
        assert spec.http_status != 200
        err = errors.error_from_envelope(spec.code, spec.name, spec.http_status)
        assert type(err) is spec.exc_type and err.retryable == spec.retryable and err.code == spec.code
    assert errors.spec_for_code(-4019).name == "_ERROR_FILE_NOT_FINISH_UPLOAD"
    assert errors.spec_for_name("ERROR_CMD_FILE_NOTEXIST").exc_type is errors.CosNotFoundError


def test_error_message_names_the_context() -> None:
    err = errors.CosSessionError("bad offset", code=-4021, status=400, operation="upload_slice_data", path="/x")
    assert str(err) == "bad offset (code -4021, HTTP 400, op=upload_slice_data, path=/x)"


def test_generations_differ_only_in_data() -> None:
    """v1 and v2 are one implementation; their classes add data (SliceOps), no methods."""
    from airflow_provider_cos.protocol.operations import V1_SLICE_OPS, V2_SLICE_OPS, Dialect, V1Dialect, V2Dialect

    for cls in (V1Dialect, V2Dialect):
        assert [name for name, value in vars(cls).items() if callable(value)] == []
        assert isinstance(cls(), Dialect)
    assert (V1.slice_ops, V2.slice_ops) == (V1_SLICE_OPS, V2_SLICE_OPS)
    assert (V1.slice_ops.flow, V2.slice_ops.flow) == ("offset", "finish")
    assert not V1.slice_ops.hash_parts and V2.slice_ops.hash_parts


def test_v1_has_no_finish_or_list() -> None:
    from airflow_provider_cos.protocol.errors import CosConfigError

    with pytest.raises(CosConfigError, match="v1 has no finish operation"):
        V1.prepare_slice_finish("/x.bin", session="S", filesize=1)
    with pytest.raises(CosConfigError, match="v1 has no list-slices operation"):
        V1.prepare_slice_list("/x.bin")


def test_v2_init_ignores_a_session_field() -> None:
    """Only v1 resumes by sending ``session`` to init; v2 lists the session instead."""
    req = V2.prepare_slice_init("/x.bin", filesize=10, sha="ab" * 20, slice_size=1 << 20, session="S1")
    assert "session" not in dict(req.fields)
    req1 = V1.prepare_slice_init(
        "/x.bin",
        filesize=10,
        sha="ab" * 20,
        slice_size=1 << 20,
        session="S1",
        uploadparts=[UploadPart(0, 10, "ab" * 20)],
    )
    assert dict(req1.fields)["session"] == "S1" and "uploadparts" not in dict(req1.fields)
