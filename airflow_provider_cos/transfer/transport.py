"""The one place where the HTTP library meets the engine.

:class:`Transport` owns the client's one ``requests.Session``: its ``HTTPAdapter`` holds the pool of
keep-alive connections, sized to the workers (``pool_maxsize``), with no adapter-level retries (the
engine's :class:`RetryPolicy` decides). :meth:`Transport.send` sends an already signed and encoded
:class:`HttpRequest` through that adapter's urllib3 pool and returns ``(status, body)``. Every exception
``urllib3``/``http.client``/the socket layer can raise is converted to :class:`CosTransportError` here,
``raise ... from e``, and nowhere else.

Why the hot path goes to the session's pool rather than ``Session.request``: the per-request layer above
it (prepare, environment-settings merge, cookies, hooks, response building) cost about as much client
CPU per slice as everything else in the engine (BENCHMARKS.md #1), and the engine needs none of it (no
proxies from the environment, no redirects, no cookies). Same wire behaviour: ``User-Agent``,
``Accept-Encoding: gzip, deflate`` (answers are decoded), an explicit ``Content-Length``, TLS verified
against the CA bundle ``requests`` uses.

Request bodies are streamed from a memoryview in ``send_block_size`` blocks (no copy) so that progress
can be reported as bytes leave, and rewound by the caller if the attempt fails.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from airflow_provider_cos.protocol.errors import CosTransportError
from airflow_provider_cos.protocol.messages import HttpRequest

USER_AGENT = "airflow-provider-cos"
#: The least time an attempt is given when the retry deadline is (nearly) spent, so it can still fail
#: with a timeout of its own rather than an invalid one.
MIN_BUDGET = 0.05
_DEFAULT_HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate", "Accept": "*/*"}


def _ca_bundle() -> str | None:
    """The CA bundle ``requests`` verifies against (certifi, one of its dependencies), so TLS trust does
    not change with the transport; ``None`` (the system store) if certifi is missing."""
    try:
        import certifi
    except ImportError:  # pragma: no cover - installed with requests
        return None
    return str(certifi.where())


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    #: The answer's headers as (name, value) pairs (the XML API reads ETag, CRC64, Date from them).
    headers: tuple[tuple[str, str], ...] = ()


class StreamingBody:
    """A read-only file-like view of a request body that reports bytes as they are read (urllib3 sends
    any body with ``read()`` in ``blocksize`` pieces).

    ``on_progress(n)`` is called with the number of *payload* bytes just handed to the socket layer
    (the multipart framing, ``overhead`` bytes, is not counted), so the sum over a successful attempt
    is exactly the payload length.
    """

    def __init__(
        self, body: bytes | bytearray | memoryview, payload_len: int, on_progress: Callable[[int], None] | None
    ) -> None:
        self._view = memoryview(body)
        self._pos = 0
        self._payload_len = payload_len
        self._reported = 0
        self._on_progress = on_progress

    def __len__(self) -> int:
        return self._view.nbytes

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


class _PoolAdapter(HTTPAdapter):
    """The session's adapter: a pool of ``pool_maxsize`` keep-alive connections per host, sending bodies
    in ``block_size`` blocks (urllib3's default is 16 KiB), verifying TLS against ``ca_certs``."""

    def __init__(self, *, block_size: int, pool_maxsize: int, ca_certs: str | None) -> None:
        self._extra_pool_kwargs: dict[str, Any] = {"blocksize": block_size}
        if ca_certs:
            self._extra_pool_kwargs.update(cert_reqs="CERT_REQUIRED", ca_certs=ca_certs)
        super().__init__(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0, pool_block=False)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        for key, value in self._extra_pool_kwargs.items():
            pool_kwargs.setdefault(key, value)
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)


class Transport:
    """One ``requests.Session`` and its connection pool. Thread-safe: the pool holds up to ``pool_size``
    keep-alive connections per host (more callers than that get a temporary connection, not a wait)."""

    def __init__(self, *, pool_size: int, timeout: tuple[float, float], send_block_size: int = 256 * 1024) -> None:
        self._timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        self._session = requests.Session()
        self._session.trust_env = False
        self._adapter = _PoolAdapter(block_size=send_block_size, pool_maxsize=pool_size, ca_certs=_ca_bundle())
        self._session.mount("http://", self._adapter)
        self._session.mount("https://", self._adapter)
        self._session.headers.update(_DEFAULT_HEADERS)
        self._closed = threading.Event()

    @property
    def session(self) -> requests.Session:
        """The client's one session (its adapter owns the connection pool used by :meth:`send`)."""
        return self._session

    def send(
        self,
        request: HttpRequest,
        *,
        body: bytes | memoryview | None = None,
        payload_len: int = 0,
        on_progress: Callable[[int], None] | None = None,
        budget: float | None = None,
    ) -> HttpResponse:
        """Send and read the whole answer. Raises :class:`CosTransportError` for any transport failure.

        ``body`` replaces ``request.body`` when given (e.g. a view of a reused slice buffer: it is
        streamed without a copy, and it is no longer used once this returns). ``budget`` (seconds, the
        retry deadline's remainder) caps connect plus read, on top of the per-phase timeouts; urllib3
        applies it to each socket operation, so a server that trickles bytes may exceed it, a silent
        one does not.
        """
        if self._closed.is_set():
            raise CosTransportError("transport is closed", retryable=False)
        raw = request.body if body is None else body
        headers = {**_DEFAULT_HEADERS, **request.headers}
        payload: Any = raw
        if raw is not None:
            headers["Content-Length"] = str(len(raw) if isinstance(raw, bytes) else raw.nbytes)
            if payload_len > 0:
                payload = StreamingBody(raw, payload_len, on_progress)
        try:
            response = self._adapter.poolmanager.urlopen(
                request.method,
                request.url,
                body=payload,
                headers=headers,
                timeout=self._timeout_within(budget),
                retries=False,
                redirect=False,
                preload_content=True,
            )
            return HttpResponse(response.status, response.data, tuple(response.headers.items()))
        except NewConnectionError as e:  # a subclass of urllib3's ConnectTimeoutError, but a refusal
            raise CosTransportError(f"connection failed: {type(e).__name__}: {_short(e)}") from e
        except Urllib3Timeout as e:
            raise CosTransportError(f"timed out: {type(e).__name__}") from e
        except (Urllib3Error, http.client.HTTPException) as e:
            raise CosTransportError(f"connection failed: {type(e).__name__}: {_short(e)}") from e
        except OSError as e:  # raw socket errors urllib3 did not wrap
            raise CosTransportError(f"connection failed: {type(e).__name__}: {_short(e)}") from e

    def _timeout_within(self, budget: float | None) -> urllib3.Timeout:
        if budget is None:
            return self._timeout
        return urllib3.Timeout(
            connect=self._timeout.connect_timeout, read=self._timeout.read_timeout, total=max(budget, MIN_BUDGET)
        )

    def close(self) -> None:
        self._closed.set()
        self._session.close()


def _short(error: BaseException) -> str:
    text = str(error)
    return text if len(text) <= 200 else text[:200] + "..."
