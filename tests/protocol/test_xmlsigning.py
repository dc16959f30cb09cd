"""XML API signature: every vector of xml_vectors.json, the verifier's refusals, and a differential test
against the official SDK's signer (``qcloud_cos.cos_auth.CosS3Auth``) over generated requests."""

from __future__ import annotations

import json
import random
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from airflow_provider_cos.protocol import xmlsigning as xs
from airflow_provider_cos.protocol.errors import CosAuthError, CosConfigError, CosPathError, CosSignatureExpiredError

VECTORS = json.loads((Path(__file__).resolve().parent / "xml_vectors.json").read_text())["signature"]
HEADER_VECTORS = [v for v in VECTORS if v.get("placement", "header") == "header"]


def _start_end(vector: dict) -> tuple[int, int]:
    start, end = vector["key_time"].split(";")
    return int(start), int(end)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_signature_vectors(vector: dict) -> None:
    exp = vector["expected"]
    got = xs.sign(
        vector["secret_id"],
        vector["secret_key"],
        method=vector["method"],
        uri_pathname=vector["uri_pathname"],
        params=vector["params"].items(),
        headers=vector["headers"].items(),
        keytime=vector["key_time"],
    )
    assert xs.sign_key(vector["secret_key"], vector["key_time"]) == exp["sign_key"]
    assert ";".join(got.param_list) == exp["url_param_list"]
    assert ";".join(got.header_list) == exp["header_list"]
    assert got.http_string == exp["http_string"]
    assert got.string_to_sign == exp["string_to_sign"]
    assert got.signature == exp["signature"]
    assert got.authorization() == exp["authorization"]
    if "pitfall_encoded_path_signature" in vector:
        encoded_path = vector["request_line"].split(" ")[1].split("?")[0]
        wrong = xs.sign(
            vector["secret_id"],
            vector["secret_key"],
            method=vector["method"],
            uri_pathname=encoded_path,
            params=vector["params"].items(),
            headers=vector["headers"].items(),
            keytime=vector["key_time"],
        )
        assert wrong.signature == vector["pitfall_encoded_path_signature"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_verifier_accepts_every_vector_as_received(vector: dict) -> None:
    """The emulator's view: parse what arrived (header or q-* query), recompute, accept."""
    start, end = _start_end(vector)
    secrets = {vector["secret_id"]: vector["secret_key"]}.get
    if "presigned_url" in vector:
        url = urlsplit(vector["presigned_url"])
        params = parse_qsl(url.query, keep_blank_values=True)
        headers = {"Host": url.hostname or ""}
        path = xs.uri_pathname_of(url.path)
    else:
        # what an HTTP server sees: the SDK's form-encoded query (+ = space) decoded, all headers sent
        if "request_url" in vector:
            url = urlsplit(vector["request_url"])
            params = parse_qsl(url.query, keep_blank_values=True)
            path = xs.uri_pathname_of(url.path)
        else:
            params = list(vector["params"].items())
            path = vector["uri_pathname"]
        headers = {
            **vector["headers"],
            **vector.get("unsigned_headers_sent", {}),
            "User-Agent": "cos-python-sdk-v5.1.9.44",
            "Authorization": vector["expected"]["authorization"],
        }
    signature = xs.find_signature(headers, params)
    assert signature is not None
    assert path == vector["uri_pathname"]
    xs.verify(
        signature, secrets, method=vector["method"], uri_pathname=path, params=params, headers=headers, now=start + 61
    )
    with pytest.raises(CosAuthError, match="SignatureDoesNotMatch"):
        xs.verify(
            signature,
            {vector["secret_id"]: "wrong" + vector["secret_key"]}.get,
            method=vector["method"],
            uri_pathname=path,
            params=params,
            headers=headers,
            now=start + 61,
        )
    with pytest.raises(CosAuthError, match="Request has expired") as expired:
        xs.verify(
            signature, secrets, method=vector["method"], uri_pathname=path, params=params, headers=headers, now=end + 1
        )
    assert expired.value.error_code == "AccessDenied" and expired.value.status == 403
    assert not expired.value.retryable


def _vector(name: str) -> dict:
    return next(v for v in VECTORS if v["name"] == name)


def _verify(vector: dict, **changes: object) -> None:
    args: dict = {
        "method": vector["method"],
        "uri_pathname": vector["uri_pathname"],
        "params": list(vector["params"].items()),
        "headers": dict(vector["headers"]),
        "now": _start_end(vector)[0] + 100,
    }
    args.update(changes)
    signature = xs.parse_authorization(vector["expected"]["authorization"])
    xs.verify(signature, {vector["secret_id"]: vector["secret_key"]}.get, **args)


def test_verifier_refusals_name_the_cause() -> None:
    v = _vector("sdk_upload_part")
    _verify(v)
    with pytest.raises(CosAuthError, match="signed parameter 'uploadid'") as e:
        _verify(v, params=[("partNumber", "1")])
    assert e.value.error_code == "SignatureDoesNotMatch"
    with pytest.raises(CosAuthError, match="signed header 'content-md5'"):
        _verify(v, headers={k: h for k, h in v["headers"].items() if k != "Content-MD5"})
    with pytest.raises(CosAuthError, match="SignatureDoesNotMatch"):
        _verify(v, params=[("partNumber", "2"), ("uploadId", v["params"]["uploadId"])])
    with pytest.raises(CosAuthError, match="SignatureDoesNotMatch"):  # another object
        _verify(v, uri_pathname="/other")
    with pytest.raises(CosAuthError, match="SignatureDoesNotMatch"):  # another bucket
        _verify(v, headers={**v["headers"], "host": "other-1250000000.cos.ap-guangzhou.myqcloud.com"})
    # extra unsigned headers and parameters are allowed; header names in any case
    _verify(
        v,
        params=[*v["params"].items(), ("x-extra", "1")],
        headers={**{k.upper(): h for k, h in v["headers"].items()}, "User-Agent": "x"},
    )
    with pytest.raises(CosSignatureExpiredError, match="RequestTimeTooSkewed") as skewed:
        _verify(v, now=_start_end(v)[0] - 901)
    assert skewed.value.retryable and skewed.value.status == 403
    _verify(v, now=_start_end(v)[0] - 900)
    with pytest.raises(CosAuthError, match="InvalidAccessKeyId"):
        xs.verify(
            xs.parse_authorization(v["expected"]["authorization"]),
            {}.get,
            method="PUT",
            uri_pathname="/",
            params=[],
            headers={},
            now=0,
        )


def test_host_with_port_is_retried_without_it() -> None:
    """SDK Domain mode: the signed host is the hostname without port, the Host header has the port."""
    signer = xs.XmlSigner(xs.XmlCredentials("AKID", "secret"), clock=lambda: 1_700_000_000)
    sent = signer.sign_headers("GET", "/k", [], {"host": "127.0.0.1"})
    received = {"Host": "127.0.0.1:8123", "Authorization": sent["Authorization"]}
    sig = xs.find_signature(received, [])
    assert sig is not None
    xs.verify(
        sig, {"AKID": "secret"}.get, method="GET", uri_pathname="/k", params=[], headers=received, now=1_700_000_000
    )


def test_path_alternatives_for_path_style() -> None:
    signer = xs.XmlSigner(xs.XmlCredentials("AKID", "secret"), clock=lambda: 1_700_000_000)
    sent = signer.sign_headers("GET", "/b-125/k", [], {"host": "127.0.0.1"})
    sig = xs.parse_authorization(sent["Authorization"])
    xs.verify(
        sig,
        {"AKID": "secret"}.get,
        method="GET",
        uri_pathname=["/k", "/b-125/k"],
        params=[],
        headers=sent,
        now=1_700_000_000,
    )


def test_security_token_is_signed_and_checked() -> None:
    creds = xs.XmlCredentials("AKIDtmp", "secret", security_token="tok/en+=")
    signer = xs.XmlSigner(creds, clock=lambda: 1_700_000_000)
    sent = signer.sign_headers("PUT", "/a b", [], {"Host": "b-1.cos.ap-x.myqcloud.com", "Content-Length": "3"})
    assert sent["x-cos-security-token"] == "tok/en+="
    sig = xs.parse_authorization(sent["Authorization"])
    assert "x-cos-security-token" in sig.header_list
    tokens = {"AKIDtmp": "tok/en+="}.get
    xs.verify(
        sig,
        {"AKIDtmp": "secret"}.get,
        method="PUT",
        uri_pathname="/a b",
        params=[],
        headers=sent,
        now=1_700_000_000,
        token_lookup=tokens,
    )
    with pytest.raises(CosAuthError, match="x-cos-security-token"):
        xs.verify(
            sig,
            {"AKIDtmp": "secret"}.get,
            method="PUT",
            uri_pathname="/a b",
            params=[],
            headers={**sent, "x-cos-security-token": "other"},
            now=1_700_000_000,
            token_lookup={"AKIDtmp": "tok/en+="}.get,
        )
    hidden = xs.XmlCredentials("AKIDtmp", "K3yV4lue", security_token="T0kenV4lue")
    shown = repr(hidden) + repr(xs.XmlSigner(hidden))
    assert "K3yV4lue" not in shown and "T0kenV4lue" not in shown and "AKIDtmp" in shown


def test_malformed_authorization_is_named() -> None:
    with pytest.raises(CosAuthError, match="lacks q-signature"):
        xs.parse_authorization(
            "q-sign-algorithm=sha1&q-ak=a&q-sign-time=1;2&q-key-time=1;2&q-header-list=&q-url-param-list="
        )
    with pytest.raises(CosAuthError, match="q-sign-algorithm must be sha1"):
        xs.parse_authorization(
            _vector("sdk_upload_part")["expected"]["authorization"].replace("algorithm=sha1", "algorithm=md5")
        )
    with pytest.raises(CosAuthError, match="q-key-time"):
        xs.parse_authorization(
            _vector("sdk_upload_part")["expected"]["authorization"].replace(
                "q-key-time=1699999940;1700010000", "q-key-time=soon"
            )
        )
    with pytest.raises(CosAuthError, match="without '='"):
        xs.parse_authorization("garbage")
    with pytest.raises(CosConfigError, match="SecretKey"):
        xs.XmlCredentials("id", "")


def test_presigned_query_matches_the_sdk_vector() -> None:
    v = _vector("sdk_presigned_get_url")
    start, end = _start_end(v)
    signer = xs.XmlSigner(xs.XmlCredentials(v["secret_id"], v["secret_key"]), clock=lambda: start + 60)
    query = signer.presign_query(
        "GET", v["uri_pathname"], list(v["params"].items()), v["headers"]["host"], validity=end - start - 60
    )
    assert query == urlsplit(v["presigned_url"]).query
    with_token = xs.XmlSigner(
        xs.XmlCredentials(v["secret_id"], v["secret_key"], security_token="t;1"), clock=lambda: start + 60
    )
    assert with_token.presign_query("GET", v["uri_pathname"], [], "h", validity=10).endswith(
        "&x-cos-security-token=t%3B1"
    )


# ------------------------------------------------------------------------ differential against the SDK

ALPHABET = "abcXYZ019-_.~ +%/!*()'&=;:@,$?#[]腾讯云文件夹中文😀\u00e9"
HEADER_NAMES = [
    "Content-Type",
    "content-md5",
    "CONTENT-DISPOSITION",
    "Cache-Control",
    "x-cos-meta-Author",
    "X-COS-META-dept",
    "x-cos-storage-class",
    "Range",
    "If-Match",
    "x-cos-acl",
    "x-ci-thing",
    "User-Agent",
    "Accept",
    "Referer",
    "Content-Language",
]
PARAM_NAMES = [
    "uploadId",
    "partNumber",
    "prefix",
    "delimiter",
    "marker",
    "max-keys",
    "encoding-type",
    "response-content-type",
    "response-Cache-Control",
    "uploads",
    "key-marker",
    "x~y",
]


def _text(rng: random.Random, low: int, high: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(low, high)))


def _generated_request(rng: random.Random) -> tuple[str, str, list[tuple[str, str]], dict[str, str], bytes]:
    method = rng.choice(["GET", "PUT", "POST", "DELETE", "HEAD"])
    key = _text(rng, 1, 24).lstrip("/") or "k"
    if key.rsplit("/", 1)[-1] in (".", ".."):  # a trailing dot segment is removed by every HTTP client
        key += "k"
    params = [(name, _text(rng, 0, 10)) for name in rng.sample(PARAM_NAMES, rng.randint(0, 5))]
    headers = {name: _text(rng, 1, 16).strip() or "v" for name in rng.sample(HEADER_NAMES, rng.randint(0, 7))}
    body = rng.randbytes(rng.randint(0, 40)) if method in ("PUT", "POST") else b""
    return method, key, params, headers, body


class _FrozenTime:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.mark.parametrize("seed", range(300))
def test_differential_against_official_sdk(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    requests = pytest.importorskip("requests")
    cos_auth = pytest.importorskip("qcloud_cos.cos_auth")
    from qcloud_cos import CosConfig

    rng = random.Random(seed)
    method, key, params, headers, body = _generated_request(rng)
    now = 1_700_000_000 + seed
    monkeypatch.setattr(cos_auth, "time", _FrozenTime(now))
    host = "examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com"
    # the SDK's URL building (quote safe='/-_.~', './' kept from dot-segment removal);
    # header values percent-encoded where non-ASCII, as the SDK does
    url = f"https://{host}/{quote(key.encode('utf-8'), safe='/-_.~').replace('./', '.%2F')}"
    wire_headers = {k: quote(v.encode("utf-8"), safe=" !\"#$%&'()*+,/:;<=>?@[\\]^_`{|}~-.") for k, v in headers.items()}
    conf = CosConfig(Region="ap-guangzhou", SecretId="AKIDexample", SecretKey="s3cr3t/Key+")
    auth = cos_auth.CosS3Auth(conf, key, dict(params), expire=10000)
    prepared = requests.Request(method, url, headers=wire_headers, data=body or None, params=dict(params)).prepare()
    auth(prepared)
    sdk_authorization = prepared.headers["Authorization"]

    signer = xs.XmlSigner(xs.XmlCredentials("AKIDexample", "s3cr3t/Key+"), validity=10000, clock=lambda: now)
    sent = dict(prepared.headers)
    del sent["Authorization"]
    ours = signer.sign_headers(method, "/" + key, list(dict(params).items()), {**sent, "host": host})
    assert ours["Authorization"] == sdk_authorization

    # and the verifier accepts the SDK's request as an HTTP server would receive it
    split = urlsplit(prepared.url)
    received_params = parse_qsl(split.query, keep_blank_values=True)
    received = {**dict(prepared.headers), "Host": host}
    signature = xs.find_signature(received, received_params)
    assert signature is not None
    xs.verify(
        signature,
        {"AKIDexample": "s3cr3t/Key+"}.get,
        method=method,
        uri_pathname=xs.uri_pathname_of(split.path),
        params=received_params,
        headers=received,
        now=now,
    )


def test_uri_pathname_is_the_decoded_path() -> None:
    assert xs.uri_pathname_of("/%E6%96%87%20a+b%2B") == "/文 a+b+"
    with pytest.raises(CosPathError, match="not percent-encoded UTF-8"):
        xs.uri_pathname_of("/%FF")
