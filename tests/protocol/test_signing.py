from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from airflow_provider_cos.protocol import signing
from airflow_provider_cos.protocol.errors import CosAuthError, CosSignatureExpiredError
from airflow_provider_cos.protocol.paths import fileid


def _vectors() -> list[dict]:
    here = Path(__file__).resolve().parent / "vectors.json"
    data = json.loads(here.read_text())
    return data["signature_vectors"]


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: v["name"])
def test_signature_vectors(vector: dict) -> None:
    inp = vector["inputs"]
    if inp["field_order"] == "aketrfb":
        got = signing.sign(
            inp["secret_id"],
            inp["secret_key"],
            inp["appid"],
            inp["bucket"],
            expired=inp["expired"],
            now=inp["now"],
            rand=inp["rand"],
            fileid=inp["fileid"],
        )
        assert (
            signing.plaintext(
                inp["appid"], inp["secret_id"], inp["expired"], inp["now"], inp["rand"], inp["fileid"], inp["bucket"]
            )
            == vector["plaintext"]
        )
    else:
        got = signing.sign_plaintext(inp["secret_key"], vector["plaintext"])
    assert got == vector["authorization"]
    raw = base64.b64decode(got)
    assert raw[:20].hex() == vector["hmac_sha1_hex"]
    assert raw[20:].decode() == vector["plaintext"]


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: v["name"])
def test_verify_accepts_every_vector_in_any_field_order(vector: dict) -> None:
    inp = vector["inputs"]
    now = inp["now"]
    fields = signing.verify(
        vector["authorization"],
        {inp["secret_id"]: inp["secret_key"]}.get,
        appid=inp["appid"],
        bucket=inp["bucket"],
        now=now,
    )
    assert fields.secret_id == inp["secret_id"]
    assert fields.expired == inp["expired"]
    assert fields.fileid == inp["fileid"]
    assert fields.one_time == (inp["expired"] == 0)


def test_fileid_matches_python_style_vector() -> None:
    vec = next(v for v in _vectors() if v["name"] == "multi_effect_with_fileid_python_java_style")
    assert fileid("1250000000", "examplebucket", "/dir 1/测试 file~v2.txt") == vec["inputs"]["fileid"]


KEYS = {"AKIDexample": "secretkey123"}


def _sig(**kw: object) -> str:
    args = {"expired": 2000, "now": 1000, "rand": 7, "fileid": ""}
    args.update(kw)
    return signing.sign("AKIDexample", "secretkey123", "1250000000", "bkt", **args)  # type: ignore[arg-type]


def test_verify_rejects_wrong_key() -> None:
    bad = signing.sign("AKIDexample", "otherkey", "1250000000", "bkt", expired=2000, now=1000, rand=1)
    with pytest.raises(CosAuthError) as err:
        signing.verify(bad, KEYS.get, appid="1250000000", bucket="bkt", now=1500)
    assert err.value.code == -95
    assert not err.value.retryable


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"appid": "999", "bucket": "bkt"}, -93),
        ({"appid": "1250000000", "bucket": "other"}, -94),
    ],
)
def test_verify_rejects_mismatched_scope(kwargs: dict, code: int) -> None:
    with pytest.raises(CosAuthError) as err:
        signing.verify(_sig(), KEYS.get, now=1500, **kwargs)
    assert err.value.code == code


def test_verify_unknown_secret_id() -> None:
    with pytest.raises(CosAuthError) as err:
        signing.verify(_sig(), {}.get, appid="1250000000", bucket="bkt", now=1500)
    assert err.value.code == -92


def test_verify_expired_is_retryable_typed_error() -> None:
    with pytest.raises(CosSignatureExpiredError) as err:
        signing.verify(_sig(), KEYS.get, appid="1250000000", bucket="bkt", now=2001)
    assert err.value.code == -96
    assert err.value.retryable


def test_one_time_signature_never_expires_by_clock() -> None:
    sig = _sig(expired=0, fileid="/1250000000/bkt/a.txt")
    fields = signing.verify(sig, KEYS.get, appid="1250000000", bucket="bkt", now=10**10)
    assert fields.one_time


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "!!!notbase64",
        base64.b64encode(b"short").decode(),
        base64.b64encode(b"x" * 20 + b"no-equals-here").decode(),
        base64.b64encode(b"x" * 20 + b"a=1&b=2").decode(),
        base64.b64encode(b"x" * 20 + b"\xff\xfe=1").decode(),
    ],
)
def test_parse_rejects_malformed(bad: str) -> None:
    with pytest.raises(CosAuthError) as err:
        signing.parse_signature(bad)
    assert err.value.code in (-90, -91)


def test_tampered_plaintext_fails_hmac() -> None:
    raw = bytearray(base64.b64decode(_sig()))
    raw[-1:] = b"X"  # change the bucket's last letter -> still parses, MAC breaks
    tampered = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(CosAuthError):
        signing.verify(tampered, KEYS.get, appid="1250000000", bucket="bkX", now=1500)


def test_signer_uses_injected_clock_and_rand_and_hides_key() -> None:
    signer = signing.Signer(
        signing.Credentials("AKIDexample", "secretkey123"), validity=300, clock=lambda: 1000.7, rand=lambda: 42
    )
    sig = signer.multi("1250000000", "bkt")
    assert sig == signing.sign("AKIDexample", "secretkey123", "1250000000", "bkt", expired=1300, now=1000, rand=42)
    once = signer.once("1250000000", "bkt", "/1250000000/bkt/x")
    assert signing.parse_signature(once).expired == 0
    assert "secretkey123" not in repr(signer)
    assert "secretkey123" not in repr(signing.Credentials("AKIDexample", "secretkey123"))
    # the MAC really is HMAC-SHA1 over the plaintext
    raw = base64.b64decode(sig)
    assert raw[:20] == hmac.new(b"secretkey123", raw[20:], hashlib.sha1).digest()


def test_signer_rejects_absurd_validity() -> None:
    with pytest.raises(ValueError):
        signing.Signer(signing.Credentials("a", "b"), validity=0)
    with pytest.raises(ValueError):
        signing.Signer(signing.Credentials("a", "b"), validity=signing.MAX_VALIDITY_SECONDS + 1)


def test_credentials_require_both_parts() -> None:
    with pytest.raises(CosAuthError, match="SecretKey"):
        signing.Credentials("id", "")
    with pytest.raises(CosAuthError, match="SecretId"):
        signing.Credentials("", "key")
