"""The one place where ``requests`` meets the engine.

:class:`Transport` sends an already signed and encoded :class:`HttpRequest` over one pooled, keep-alive
``requests.Session`` and returns ``(status, body)``. Every exception ``requests``/``urllib3`` can raise is
converted to :class:`CosTransportError` here, ``raise ... from e``, and nowhere else.

Request bodies are streamed from a memoryview in ``send_block_size`` blocks (no copy) so that progress
can be reported as bytes leave, and rewound by the caller if the attempt fails.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from airflow_provider_cos.protocol.errors import CosTransportError
from airflow_provider_cos.protocol.messages import HttpRequest

USER_AGENT = "airflow-provider-cos"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes


class _BlockAdapter(HTTPAdapter):
    """An adapter whose connections send file-like bodies in big blocks (urllib3's default is 16 KiB)."""

    def __init__(self, *, block_size: int, pool_maxsize: int) -> None:
        self._block_size = block_size
        super().__init__(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0, pool_block=False)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        pool_kwargs.setdefault("blocksize", self._block_size)
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)


class StreamingBody:
    """A read-only file-like view of a request body that reports bytes as they are read.

    ``on_progress(n)`` is called with the number of *payload* bytes just handed to the socket layer
    (the multipart framing, ``overhead`` bytes, is not counted), so the sum over a successful attempt
    is exactly the payload length.
    """

    def __init__(self, body: bytes | bytearray | memoryview, payload_len: int,
                 on_progress: Callable[[int], None] | None) -> None:
        self._view = memoryview(body)
        self._pos = 0
        self._payload_len = payload_len
        self._reported = 0
        self._on_progress = on_progress

    def __len__(self) -> int:
        return self._view.nbytes

    def __iter__(self) -> Iterator[memoryview]:  # makes requests treat us as a stream with a length
        while True:
            block = self.read(256 * 1024)
            if not block:
                return
            yield block

    def read(self, size: int = -1) -> memoryview:
        end = self._view.nbytes if size is None or size < 0 else min(self._view.nbytes, self._pos + size)
        block = self._view[self._pos : end]
        self._pos = end
        if self._on_progress is not None:
            now = min(self._payload_len, self._pos)
            if now > self._reported:
                delta, self._reported = now - self._reported, now
                self._on_progress(delta)
        return block

    @property
    def reported(self) -> int:
        return self._reported


class Transport:
    """A pooled HTTP client. Thread-safe: the pool holds up to ``pool_size`` keep-alive connections."""

    def __init__(self, *, pool_size: int, timeout: tuple[float, float], send_block_size: int = 256 * 1024,
                 session: requests.Session | None = None) -> None:
        self._timeout = timeout
        self._session = session or requests.Session()
        self._session.trust_env = False if session is None else self._session.trust_env
        adapter = _BlockAdapter(block_size=send_block_size, pool_maxsize=pool_size)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers["User-Agent"] = USER_AGENT
        self._closed = threading.Event()

    @property
    def session(self) -> requests.Session:
        return self._session

    def send(self, request: HttpRequest, *, body: bytes | memoryview | None = None, payload_len: int = 0,
             on_progress: Callable[[int], None] | None = None) -> HttpResponse:
        """Send and read the whole answer. Raises :class:`CosTransportError` for any transport failure.

        ``body`` replaces ``request.body`` when given (e.g. a view of a reused slice buffer: it is
        streamed without a copy, and it is no longer used once this returns).
        """
        if self._closed.is_set():
            raise CosTransportError("transport is closed", retryable=False)
        raw = request.body if body is None else body
        payload: Any = raw
        if raw is not None and payload_len > 0:
            payload = StreamingBody(raw, payload_len, on_progress)
        try:
            response = self._session.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                data=payload,
                timeout=self._timeout,
                allow_redirects=False,
            )
            content = response.content
            status = response.status_code
            response.close()
        except requests.Timeout as e:
            raise CosTransportError(f"timed out: {type(e).__name__}") from e
        except requests.RequestException as e:
            raise CosTransportError(f"connection failed: {type(e).__name__}: {_short(e)}") from e
        except OSError as e:  # raw socket errors urllib3 did not wrap
            raise CosTransportError(f"connection failed: {type(e).__name__}: {_short(e)}") from e
        return HttpResponse(status, content)

    def close(self) -> None:
        self._closed.set()
        self._session.close()


def _short(error: BaseException) -> str:
    text = str(error)
    return text if len(text) <= 200 else text[:200] + "..."
