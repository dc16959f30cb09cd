"""Signed, retried execution of one protocol step: sign → encode → send → process, again if allowed.

Every attempt is signed afresh (multi-effect, or one-time bound to the path for ``delete``), so a long
transfer never outlives a signature and a retried one-time request never reuses its signature. The
retry decision is the :class:`RetryPolicy`'s; backoff waits on the transfer's stop event, so a cancel
interrupts it at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from airflow_provider_cos.protocol.errors import CosCancelledError, CosError
from airflow_provider_cos.protocol.messages import CosRequest, CosTarget, encode_request, encode_request_head
from airflow_provider_cos.protocol.paths import encode_path
from airflow_provider_cos.protocol.signing import Signer
from airflow_provider_cos.transfer.buffers import SliceBuffer
from airflow_provider_cos.transfer.retry import RetryPolicy
from airflow_provider_cos.transfer.transport import Transport

T = TypeVar("T")
Processor = Callable[[int, bytes], T]


class RetryNote:
    """An ``on_retry`` callback that remembers whether any retry happened, then forwards to ``then``.

    A non-idempotent call (insertOnly upload, Complete, delete) that fails after a retry may have landed in
    an earlier attempt whose answer was lost; callers check the server only in that case."""

    def __init__(self, then: Callable[[CosError], None] | None = None) -> None:
        self.retried = False
        self._then = then

    def __call__(self, error: CosError) -> None:
        self.retried = True
        if self._then is not None:
            self._then(error)


class Requester:
    """Glue between the pure protocol steps and the transport. Thread-safe (no mutable state)."""

    def __init__(self, signer: Signer, transport: Transport, retry: RetryPolicy) -> None:
        self._signer = signer
        self._transport = transport
        self._retry = retry

    @property
    def retry(self) -> RetryPolicy:
        return self._retry

    def _sign(self, target: CosTarget, request: CosRequest) -> str:
        if request.signature == "once":
            return self._signer.once(target.appid, target.bucket, target.fileid(request.path))
        if request.signature == "download":
            return self._signer.download(target.appid, target.bucket, encode_path(request.path))
        return self._signer.multi(target.appid, target.bucket)

    def call(
        self,
        target: CosTarget,
        request: CosRequest,
        process: Processor[T],
        *,
        data: bytes | bytearray | SliceBuffer | None = None,
        progress: Callable[[int], None] | None = None,
        stop: threading.Event | None = None,
        on_retry: Callable[[CosError], None] | None = None,
    ) -> T:
        """Run ``request`` until ``process`` returns, the policy gives up (the typed error is raised),
        or ``stop`` is set (:class:`CosCancelledError`).

        ``data`` is the binary part: ``bytes``/``bytearray`` (joined into the encoded body), or a loaded
        :class:`SliceBuffer` (framed in place, sent as a view of the buffer; the buffer must not be
        reloaded before this call returns)."""

        def attempt(on_bytes: Callable[[int], None] | None, budget: float | None) -> T:
            signature = self._sign(target, request)
            if isinstance(data, SliceBuffer):
                if data.nbytes != request.data_len:
                    raise ValueError(f"op {request.op}: data length {data.nbytes} != {request.data_len}")
                http, form = encode_request_head(target, request, signature)
                body: bytes | memoryview | None = data.framed(form)
            else:
                http = encode_request(target, request, signature, data)
                body = http.body
            response = self._transport.send(
                http,
                body=body,
                payload_len=request.data_len if data is not None else 0,
                on_progress=on_bytes,
                budget=budget,
            )
            return process(response.status, response.body)

        return self.retrying(attempt, op=request.op, path=request.path, progress=progress, stop=stop, on_retry=on_retry)

    def retrying(
        self,
        attempt: Callable[[Callable[[int], None] | None, float | None], T],
        *,
        op: str,
        path: str | None,
        progress: Callable[[int], None] | None = None,
        stop: threading.Event | None = None,
        on_retry: Callable[[CosError], None] | None = None,
        before_retry: Callable[[CosError], None] | None = None,
    ) -> T:
        """The retry loop shared by every generation: ``attempt(on_bytes, budget)`` signs, sends and
        processes one try; a typed error is retried as the policy says (bytes reported by a failed try are
        taken back from ``progress``), the wait is cut short by ``stop``. ``before_retry`` may adjust the
        next try (the XML API re-signs with the server's clock after ``RequestTimeTooSkewed``)."""
        policy = self._retry.begin()
        while True:
            if stop is not None and stop.is_set():
                raise CosCancelledError("transfer stopped", operation=op, path=path)
            sent = 0

            def on_bytes(n: int) -> None:
                nonlocal sent
                sent += n
                if progress is not None:
                    progress(n)

            try:
                return attempt(on_bytes if progress is not None else None, policy.remaining())
            except CosError as error:
                if sent and progress is not None:
                    progress(-sent)  # these bytes must go again
                if error.operation is None:
                    error.operation = op
                if error.path is None:
                    error.path = path
                policy = policy.increment(error)  # raises when we must give up
                if before_retry is not None:
                    before_retry(error)
                if on_retry is not None:
                    on_retry(error)
                delay = policy.last_backoff
                if delay > 0:
                    if policy.sleep is not None:
                        policy.sleep(delay)
                    elif stop is not None:
                        stop.wait(delay)
                    else:
                        threading.Event().wait(delay)
