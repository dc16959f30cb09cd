"""The ``cos`` scheme for Airflow's ``ObjectStoragePath``: an fsspec filesystem on the provider's client.

``ObjectStoragePath("cos://examplebucket-1250000000/dir/file.csv", conn_id="cos_default")``: the host
part is ``<bucket>-<appid>`` (the XML API's bucket name, the same form as the provider's Asset URIs); its
appid must be the connection's. Everything goes through the connection's one :class:`CosClient` and
therefore works for the three generations (``v1``, ``v2``, ``xml``):

* ``info``/``exists``/``isdir``/``ls`` (and so ``iterdir``, ``glob``): ``stat`` / ``list``;
* ``rm``, ``mkdir``/``makedirs`` (JSON folders must exist before files; XML folders are ``key/``);
* ``put_file``: the upload engine (slices, retries, resume); ``get_file``: the downloader (ranged parts,
  verified, atomic rename);
* ``open("rb")``: a buffered file whose reads are ranged GETs of ``block_size`` (default 4 MiB) with
  fsspec's read-ahead cache; ``open("wb")``: written to a temporary file (spooled to disk, so memory
  stays small) and uploaded with the engine on ``close()``; nothing is stored if the write fails.

Why not ``cosfs`` (PyPI): it is an alpha fsspec package on the official SDK (``cos-python-sdk-v5``), so
XML only, with its own credentials and no Airflow connection, and it sends multipart parts one after
another; this filesystem reuses the provider's engine (parallel slices, retries, resume, verification)
and its ``cos`` connection for every generation.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from airflow_provider_cos.hooks.connection import DEFAULT_CONN_ID
from airflow_provider_cos.protocol.errors import CosAlreadyExistsError, CosConfigError, CosNotFoundError
from airflow_provider_cos.transfer import CosClient

schemes = ["cos"]

#: Bytes per ranged read of ``open("rb")`` (fsspec reads ahead by this much).
DEFAULT_BLOCK_SIZE = 4 * 1024 * 1024


def get_fs(conn_id: str | None, storage_options: dict[str, Any] | None = None) -> CosFileSystem:
    """Airflow's entry point: the filesystem of connection ``conn_id`` (default ``cos_default``)."""
    from airflow_provider_cos.hooks.cos import CosHook

    hook = CosHook(conn_id or DEFAULT_CONN_ID)
    return CosFileSystem(client=hook.client, appid=hook.app_id, **(storage_options or {}))


class CosFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """fsspec filesystem over one :class:`CosClient`. Paths are ``<bucket>-<appid>/<key>``."""

    protocol = "cos"
    root_marker = ""
    cachable = False  # one per connection lookup: the client holds the credentials

    def __init__(self, *, client: CosClient, appid: str, block_size: int = DEFAULT_BLOCK_SIZE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client
        self.appid = appid
        self.blocksize = block_size

    # ------------------------------------------------------------------ paths
    def split(self, path: str) -> tuple[str, str, str]:
        """``(bucket_full, bucket, cos_path)`` of ``path``; ``cos_path`` is ``/`` for the bucket root."""
        path = self._strip_protocol(path).strip("/")
        bucket_full, _, key = path.partition("/")
        suffix = f"-{self.appid}"
        if not bucket_full.endswith(suffix) or len(bucket_full) == len(suffix):
            raise CosConfigError(
                f"cos://{bucket_full}/: the host must be <bucket>-{self.appid} (the connection's appid)"
            )
        return bucket_full, bucket_full[: -len(suffix)], "/" + key

    def _entry(
        self, bucket_full: str, cos_path: str, *, folder: bool, size: int | None, raw: Any = None
    ) -> dict[str, Any]:
        name = f"{bucket_full}{cos_path.rstrip('/')}" if cos_path != "/" else bucket_full
        entry: dict[str, Any] = {"name": name, "type": "directory" if folder else "file", "size": size or 0}
        if raw:
            entry.update({k: v for k, v in dict(raw).items() if k not in ("name", "type", "size")})
        return entry

    # ------------------------------------------------------------------ metadata
    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        bucket_full, bucket, cos_path = self.split(path)
        if cos_path == "/":
            return self._entry(bucket_full, "/", folder=True, size=0)
        info = self.client.stat(cos_path, bucket)
        if info is not None and not info.is_folder:
            return self._entry(bucket_full, cos_path, folder=False, size=info.filesize, raw=info.raw)
        folder = cos_path.rstrip("/") + "/"
        if self.client.stat(folder, bucket) is not None:
            return self._entry(bucket_full, folder, folder=True, size=0)
        parent, _, name = folder.rstrip("/").rpartition("/")
        try:  # a folder that exists only as the prefix of its objects (XML)
            for entry in self.client.list(parent + "/", prefix=name, bucket=bucket):
                if entry.is_folder and entry.name.rstrip("/") == name:
                    return self._entry(bucket_full, folder, folder=True, size=0)
        except CosNotFoundError:
            pass
        raise FileNotFoundError(path)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        bucket_full, bucket, cos_path = self.split(path)
        if cos_path != "/":
            info = self.info(path)
            if info["type"] == "file":
                return [info] if detail else [info["name"]]
        folder = cos_path.rstrip("/") + "/"
        try:
            entries = [
                self._entry(
                    bucket_full,
                    folder + e.name.rstrip("/") + ("/" if e.is_folder else ""),
                    folder=e.is_folder,
                    size=e.filesize,
                    raw=e.raw,
                )
                for e in self.client.list(folder, bucket=bucket)
            ]
        except CosNotFoundError:
            raise FileNotFoundError(path) from None
        return entries if detail else [e["name"] for e in entries]

    # ------------------------------------------------------------------ changes
    def _rm(self, path: str) -> None:
        _bucket_full, bucket, cos_path = self.split(path)
        if self.info(path)["type"] == "directory":
            self.client.delete(cos_path.rstrip("/") + "/", bucket)
        else:
            self.client.delete(cos_path, bucket)

    def rm_file(self, path: str) -> None:
        _bucket_full, bucket, cos_path = self.split(path)
        self.client.delete(cos_path, bucket)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        _bucket_full, bucket, cos_path = self.split(path)
        if cos_path == "/":
            return
        folder = cos_path.rstrip("/") + "/"
        if create_parents:
            self.client.ensure_folders(folder + "x", bucket)
        else:
            self.client.create_folder(folder, bucket)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        _bucket_full, bucket, cos_path = self.split(path)
        if cos_path == "/":
            return
        folder = cos_path.rstrip("/") + "/"
        if not exist_ok and self.client.stat(folder, bucket) is not None:
            raise FileExistsError(path)
        with contextlib.suppress(CosAlreadyExistsError):
            self.client.ensure_folders(folder + "x", bucket)

    def put_file(self, lpath: str, rpath: str, callback: Any = None, **kwargs: Any) -> None:
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return
        _bucket_full, bucket, cos_path = self.split(rpath)
        self.client.upload_file(os.fspath(lpath), cos_path, bucket)

    def get_file(self, rpath: str, lpath: str, callback: Any = None, outfile: Any = None, **kwargs: Any) -> None:
        if self.isdir(rpath):
            os.makedirs(lpath, exist_ok=True)
            return
        _bucket_full, bucket, cos_path = self.split(rpath)
        if outfile is not None:  # a file object: stream the parts into it
            size = self.info(rpath)["size"]
            for start in range(0, size, self.blocksize):
                outfile.write(self.client.read_range(cos_path, start, min(self.blocksize, size - start), bucket))
            return
        self.client.download_file(cos_path, os.fspath(lpath), bucket)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy within COS: through a temporary local file (the JSON API has no server-side copy here)."""
        with tempfile.TemporaryDirectory(prefix="cosfs-") as tmp:
            local = os.path.join(tmp, "object")
            self.get_file(path1, local)
            self.put_file(local, path2)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        if mode == "rb":
            return CosReadFile(
                self,
                path,
                mode,
                block_size=block_size or self.blocksize,
                cache_type="readahead",
                cache_options=cache_options,
            )
        if mode == "wb":
            return CosWriteFile(self, path)
        raise ValueError(f"mode {mode!r} is not supported (rb, wb)")


class CosReadFile(AbstractBufferedFile):  # type: ignore[misc]
    """Reads are ranged requests of ``block_size``, cached read-ahead by fsspec."""

    def _fetch_range(self, start: int, end: int) -> bytes:
        _bucket_full, bucket, cos_path = self.fs.split(self.path)
        end = min(end, self.size)
        return self.fs.client.read_range(cos_path, start, end - start, bucket) if end > start else b""


class CosWriteFile:
    """``open("wb")``: bytes go to a temporary file; ``close()`` uploads it with the engine (an exception
    inside ``with`` discards it: nothing is stored)."""

    def __init__(self, fs: CosFileSystem, path: str) -> None:
        self.fs = fs
        self.path = path
        self.mode = "wb"
        self._tmp = tempfile.NamedTemporaryFile(prefix="cosfs-", suffix=".upload", delete=False)  # noqa: SIM115
        self.closed = False

    def write(self, data: bytes) -> int:
        return self._tmp.write(data)

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        self._tmp.flush()

    def tell(self) -> int:
        return self._tmp.tell()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._tmp.close()
            self.fs.put_file(self._tmp.name, self.path)
        finally:
            os.unlink(self._tmp.name)

    def discard(self) -> None:
        self.closed = True
        self._tmp.close()
        os.unlink(self._tmp.name)

    def __enter__(self) -> CosWriteFile:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()
