"""Signature verification paths (COS_JSON_API.md §2.4) over real HTTP."""

from __future__ import annotations

import base64
import time
from urllib.parse import quote

import pytest

from airflow_provider_cos.emulator import DEMO, CosEmulator
from airflow_provider_cos.protocol.messages import CosRequest
from airflow_provider_cos.protocol.paths import fileid
from airflow_provider_cos.protocol.signing import Credentials, Signer, sign, sign_plaintext
from tests.emulator.client import Client

NOW = int(time.time())


@pytest.fixture
def client(emulator: CosEmulator) -> Client:
    c = Client(emulator.url, "v2")
    c.upload("/a.txt", b"a")
    c.mkdir("/dir/")
    c.upload("/dir/b.txt", b"b")
    return c


def _stat(client: Client, signature: str | None, path: str = "/a.txt") -> tuple[int, int]:
    headers = {"Authorization": None} if signature is None else None  # type: ignore[dict-item]
    resp = client.send(client.d.prepare_stat(path), signature=signature or "", headers=headers)
    return resp.status_code, resp.json()["code"]


def _multi(**over: object) -> str:
    args: dict[str, object] = {
        "secret_id": DEMO.secret_id,
        "secret_key": DEMO.secret_key,
        "appid": DEMO.appid,
        "bucket": DEMO.bucket,
        "expired": NOW + 600,
        "now": NOW,
        "rand": 12345,
    }
    args.update(over)
    return sign(**args)  # type: ignore[arg-type]


def test_valid_multi_effect(client: Client) -> None:
    assert _stat(client, _multi()) == (200, 0)


@pytest.mark.parametrize(
    ("signature", "code"),
    [
        (None, -90),
        ("", -90),
        ("!!!not base64!!!", -91),
        (base64.b64encode(b"short").decode(), -91),
        (base64.b64encode(b"x" * 20 + b"a=1&b=2").decode(), -91),
    ],
)
def test_missing_and_malformed(client: Client, signature: str | None, code: int) -> None:
    assert _stat(client, signature) == (403, code)


def test_wrong_key_unknown_id_appid_bucket(client: Client) -> None:
    assert _stat(client, _multi(secret_key="wrong-key")) == (403, -95)
    assert _stat(client, _multi(secret_id="AKIDunknown")) == (403, -92)
    assert _stat(client, _multi(appid="1250000009")) == (403, -93)
    assert _stat(client, _multi(bucket="otherbucket")) == (403, -94)


def test_expired(client: Client) -> None:
    old = Signer(Credentials(DEMO.secret_id, DEMO.secret_key), validity=60, clock=lambda: time.time() - 3600)
    status, code = _stat(client, old.multi(DEMO.appid, DEMO.bucket))
    assert (status, code) == (403, -96)
    resp = client.send(client.d.prepare_stat("/a.txt"), signature=old.multi(DEMO.appid, DEMO.bucket))
    assert resp.json()["message"] == "ERROR_PROXY_AUTH_EXPIRED"


def test_multi_effect_f_forms(client: Client) -> None:
    assert _stat(client, _multi(fileid=fileid(DEMO.appid, DEMO.bucket, "/a.txt"))) == (200, 0)
    assert _stat(client, _multi(fileid=f"/{DEMO.appid}/{DEMO.bucket}/")) == (200, 0)  # bucket root prefix
    assert _stat(client, _multi(fileid=f"/{DEMO.appid}/{DEMO.bucket}/dir/"), "/dir/b.txt") == (200, 0)
    assert _stat(client, _multi(fileid=f"/{DEMO.appid}/{DEMO.bucket}/dir/"), "/a.txt") == (403, -95)
    assert _stat(client, _multi(fileid=f"/{DEMO.appid}/{DEMO.bucket}/a.txtx"), "/a.txt") == (403, -95)


def test_php_field_order(client: Client) -> None:
    text = f"a={DEMO.appid}&b={DEMO.bucket}&k={DEMO.secret_id}&e={NOW + 600}&t={NOW}&r=99&f="
    assert _stat(client, sign_plaintext(DEMO.secret_key, text)) == (200, 0)


def _once(path: str, rand: int = 777, f: str | None = None) -> str:
    return sign(
        DEMO.secret_id,
        DEMO.secret_key,
        DEMO.appid,
        DEMO.bucket,
        expired=0,
        now=NOW,
        rand=rand,
        fileid=f if f is not None else fileid(DEMO.appid, DEMO.bucket, path),
    )


def test_one_time_replay_and_binding(client: Client) -> None:
    delete = client.d.prepare_delete("/a.txt")
    wrong = client.send(delete, signature=_once("/dir/b.txt", rand=1))
    assert (wrong.status_code, wrong.json()["code"]) == (403, -95)
    sig = _once("/a.txt", rand=2)
    assert client.send(delete, signature=sig).json()["code"] == 0
    client.upload("/a.txt", b"again")
    replay = client.send(delete, signature=sig)
    assert (replay.status_code, replay.json()["code"]) == (403, -99)
    assert client.stat("/a.txt").filesize == 5


def test_one_time_f_compared_decoded(client: Client) -> None:
    client.upload("/dir/sp ace~x.txt", b"x")
    # JV4 encodes '~' as %7E, PY4 keeps it: both must be accepted
    f = f"/{DEMO.appid}/{DEMO.bucket}/dir/sp%20ace%7Ex.txt"
    resp = client.send(client.d.prepare_delete("/dir/sp ace~x.txt"), signature=_once("", rand=3, f=f))
    assert resp.json()["code"] == 0


def test_delete_needs_one_time_unless_configured(client: Client, emulator: CosEmulator) -> None:
    resp = client.send(client.d.prepare_delete("/a.txt"), signature=_multi())
    assert (resp.status_code, resp.json()["code"]) == (403, -98)
    emulator.settings.delete_requires_once = False
    resp = client.send(client.d.prepare_delete("/a.txt"), signature=_multi(rand=5))
    assert resp.json()["code"] == 0


def test_one_time_rejected_for_upload(client: Client) -> None:
    req = client.d.prepare_upload("/c.txt", 1)
    resp = client.send(req, b"c", signature=_once("/c.txt", rand=9))
    assert resp.status_code == 403


def _sig_with(char: str) -> str:
    for rand in range(1, 5000):
        sig = _multi(rand=rand)
        if char in sig:
            return sig
    raise AssertionError("no signature with " + char)


def test_sign_query_parameter(client: Client) -> None:
    sig = _sig_with("+")
    base = client.target.url("/a.txt") + "?op=stat&sign="
    resp = client.http.get(base + quote(sig, safe=""), timeout=10)
    assert resp.status_code == 200 and resp.json()["code"] == 0
    raw = client.http.get(base + sig, timeout=10)  # '+' becomes a space: the JS4 -70 bug
    assert (raw.status_code, raw.json()["code"]) == (403, -70)
    # Authorization header wins over the query parameter
    resp = client.http.get(base + "garbage", headers={"Authorization": sig}, timeout=10)
    assert resp.json()["code"] == 0


def test_auth_checked_before_op(client: Client) -> None:
    req = CosRequest("x", "GET", "/a.txt", query=(("op", "nosuchop"),))
    resp = client.send(req, signature=_multi(secret_key="bad"))
    assert resp.json()["code"] == -95  # an unknown op is found only after authentication
