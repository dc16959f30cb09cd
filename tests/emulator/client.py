"""A tiny test-only COS client: the protocol layer's prepare/process pairs + ``requests``.

Signs with :class:`~airflow_provider_cos.protocol.signing.Signer` (one-time signatures for requests the
dialect marks ``once``) and sends the encoded bytes over a keep-alive ``requests.Session``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import requests

from airflow_provider_cos.emulator import DEMO, BucketConfig
from airflow_provider_cos.protocol.messages import CosRequest, CosTarget, encode_request, parse_envelope
from airflow_provider_cos.protocol.operations import V1, V2, Dialect
from airflow_provider_cos.protocol.sha1parts import UploadPartsHasher, slice_bounds
from airflow_provider_cos.protocol.signing import Credentials, Signer

MiB = 1024 * 1024


@dataclass
class Client:
    base_url: str
    api_version: str = "v2"
    bucket: BucketConfig = DEMO
    http: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.target = CosTarget(self.base_url, self.api_version, self.bucket.appid, self.bucket.bucket)  # type: ignore[arg-type]
        self.signer = Signer(Credentials(self.bucket.secret_id, self.bucket.secret_key))
        self.d: Dialect = V1 if self.api_version == "v1" else V2

    # ---- raw
    def sign_for(self, req: CosRequest) -> str:
        if req.signature == "once":
            return self.signer.once(self.bucket.appid, self.bucket.bucket, self.target.fileid(req.path))
        return self.signer.multi(self.bucket.appid, self.bucket.bucket)

    def send(
        self,
        req: CosRequest,
        data: bytes | None = None,
        *,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> requests.Response:
        http = encode_request(self.target, req, signature if signature is not None else self.sign_for(req), data)
        merged = dict(http.headers)
        if headers:
            merged.update(headers)
        merged = {k: v for k, v in merged.items() if v is not None}
        return self.http.request(http.method, http.url, headers=merged, data=http.body, timeout=timeout)

    def envelope(self, req: CosRequest, data: bytes | None = None, **kw: Any) -> tuple[int, dict[str, Any]]:
        resp = self.send(req, data, **kw)
        return resp.status_code, resp.json()

    def data_of(self, req: CosRequest, data: bytes | None = None, **kw: Any) -> dict[str, Any]:
        resp = self.send(req, data, **kw)
        return parse_envelope(resp.status_code, resp.content, op=req.op)

    # ---- operations
    def upload(self, path: str, data: bytes, **kw: Any) -> Any:
        resp = self.send(self.d.prepare_upload(path, len(data), **kw), data)
        return self.d.process_upload(resp.status_code, resp.content, path=path)

    def stat(self, path: str) -> Any:
        resp = self.send(self.d.prepare_stat(path))
        return self.d.process_stat(resp.status_code, resp.content, path=path)

    def delete(self, path: str) -> None:
        resp = self.send(self.d.prepare_delete(path))
        self.d.process_delete(resp.status_code, resp.content, path=path)

    def mkdir(self, path: str) -> Any:
        resp = self.send(self.d.prepare_create_folder(path))
        return self.d.process_create_folder(resp.status_code, resp.content, path=path)

    def list(self, folder: str, **kw: Any) -> Any:
        resp = self.send(self.d.prepare_list(folder, **kw))
        return self.d.process_list(resp.status_code, resp.content, path=folder)

    def init(self, path: str, data: bytes, slice_size: int = MiB, *, parts: bool = True, **kw: Any) -> Any:
        if parts:
            sha, up = hash_parts(data, slice_size)
        else:
            sha, up = sha1(data), []
        req = self.d.prepare_slice_init(
            path, filesize=len(data), sha=sha, slice_size=slice_size, uploadparts=up if parts else None, **kw
        )
        resp = self.send(req)
        return self.d.process_slice_init(resp.status_code, resp.content, path=path)

    def put_slice(self, path: str, session: str, offset: int, chunk: bytes, sha: str | None = None) -> Any:
        resp = self.send(
            self.d.prepare_slice_data(path, session=session, offset=offset, length=len(chunk), sha=sha), chunk
        )
        return self.d.process_slice_data(resp.status_code, resp.content, path=path)

    def finish(self, path: str, session: str, filesize: int, sha: str | None = None) -> Any:
        assert self.api_version == "v2"
        resp = self.send(V2.prepare_slice_finish(path, session=session, filesize=filesize, sha=sha))
        return V2.process_slice_finish(resp.status_code, resp.content, path=path)

    def slice_list(self, path: str) -> Any:
        resp = self.send(V2.prepare_slice_list(path))
        return V2.process_slice_list(resp.status_code, resp.content, path=path)

    def upload_slices(self, path: str, data: bytes, slice_size: int = MiB, **kw: Any) -> Any:
        """Full slice upload in either dialect; returns the final URLs (or the instant-upload result)."""
        from airflow_provider_cos.protocol.messages import InstantUpload

        res = self.init(path, data, slice_size, **kw)
        if isinstance(res, InstantUpload):
            return res.urls
        urls = None
        for offset, length in slice_bounds(len(data), res.slice_size):
            if offset < res.offset:
                continue
            ack = self.put_slice(path, res.session, offset, data[offset : offset + length])
            urls = getattr(ack, "urls", None) or urls
        if self.api_version == "v2":
            return self.finish(path, res.session, len(data), sha1(data))
        return urls


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def hash_parts(data: bytes, slice_size: int) -> tuple[str, list[Any]]:
    hasher = UploadPartsHasher(len(data), slice_size)
    hasher.update(data)
    return hasher.finish()


def payload(n: int, seed: int = 1) -> bytes:
    """Deterministic, non-repeating-looking test bytes."""
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
    reps = n // len(block) + 1
    out = bytearray()
    for i in range(reps):
        out += bytes([i % 251]) + block[1:]
    return bytes(out[:n])


def stored_bytes(data_dir: Any, path: str, bucket: BucketConfig = DEMO) -> bytes | None:
    """The content the emulator committed for ``path``, read straight from its data directory."""
    import json
    from pathlib import Path

    root = Path(data_dir) / "buckets" / f"{bucket.appid}-{bucket.bucket}"
    for meta_file in (root / "objects").glob("*.json"):
        meta = json.loads(meta_file.read_text("utf-8"))
        if meta["path"] == path and meta["kind"] == "file":
            return (root / "blobs" / meta["blob"]).read_bytes()
    return None


def raw_http(url: str, request: bytes, *, timeout: float = 10) -> bytes:
    """Send raw bytes on a fresh socket and return everything the server answers until it closes."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:") and len(body) >= int(line.split(b":")[1]):
                        return b"".join(chunks)
        return b"".join(chunks)
