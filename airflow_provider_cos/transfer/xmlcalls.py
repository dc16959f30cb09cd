"""The XML API (``api_version="xml"``) on the engine's transport and retry loop.

:class:`XmlRequester` runs one :mod:`~airflow_provider_cos.protocol.xmloperations` prepare/process pair:
sign (a fresh KeyTime per try) → send through the client's one :class:`Transport` → process the status,
headers and body; retries go through :meth:`Requester.retrying` (the same loop, policy and progress
accounting as v1/v2; the XML error table says what is retryable). ``RequestTimeTooSkewed`` makes the
next try sign with the server's clock (its ``Date`` header), once.

:func:`xml_target` turns the connection's :class:`CosTarget` into the XML address. Without a configured
host, requests go to ``https://<bucket>-<appid>.cos.<region>.myqcloud.com``. A configured host (the
emulator, a proxy) only changes where the TCP connection goes: the request line's path, the ``Host``
header and the signature stay what production gets. ``custom_domain`` (a CDN or bucket domain) is
different: it is the ``Host`` too.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from typing import TypeVar

from airflow_provider_cos.protocol.errors import CosError, CosNotFoundError, CosSignatureExpiredError
from airflow_provider_cos.protocol.messages import CosTarget
from airflow_provider_cos.protocol.paths import default_endpoint, xml_region
from airflow_provider_cos.protocol.xmlmessages import Headers, ObjectEntry, UploadEntry, header
from airflow_provider_cos.protocol.xmloperations import (
    XML,
    ObjectHead,
    XmlRequest,
    XmlTarget,
    encode_xml_request,
)
from airflow_provider_cos.protocol.xmlsigning import XmlCredentials, XmlSigner
from airflow_provider_cos.transfer.buffers import SliceBuffer
from airflow_provider_cos.transfer.requester import Requester
from airflow_provider_cos.transfer.transport import Transport

T = TypeVar("T")
XmlProcessor = Callable[[int, Headers, bytes], T]


def xml_bucket(target: CosTarget) -> str:
    """The XML API's bucket name ``<bucket>-<appid>`` (the connection stores the plain name)."""
    suffix = f"-{target.appid}"
    return target.bucket if target.bucket.endswith(suffix) else target.bucket + suffix


def xml_target(target: CosTarget) -> XmlTarget:
    """Where XML requests of ``target`` go (see the module doc)."""
    region = xml_region(target.region)
    endpoint = None if target.endpoint == default_endpoint("xml", target.region) else target.endpoint
    return XmlTarget(xml_bucket(target), region, endpoint=endpoint)


def object_key(cos_path: str) -> str:
    """The XML key of a JSON-style path: ``/a/b.txt`` -> ``a/b.txt`` (folders keep their ``/``)."""
    return cos_path.lstrip("/")


class XmlRequester:
    """Signs, sends and retries XML requests. Thread-safe; the clock offset is shared by all threads."""

    def __init__(
        self,
        credentials: XmlCredentials,
        transport: Transport,
        requester: Requester,
        *,
        validity: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._offset = 0.0  # server time - our time, learnt from RequestTimeTooSkewed
        self._signer = XmlSigner(credentials, validity=validity, clock=self.now)
        self._transport = transport
        self._requester = requester

    def now(self) -> float:
        """Our idea of the server's clock."""
        return self._clock() + self._offset

    def call(
        self,
        target: XmlTarget,
        request: XmlRequest,
        process: XmlProcessor[T],
        *,
        data: bytes | bytearray | memoryview | SliceBuffer | None = None,
        progress: Callable[[int], None] | None = None,
        stop: threading.Event | None = None,
        on_retry: Callable[[CosError], None] | None = None,
    ) -> T:
        server_date: list[float] = []

        def attempt(on_bytes: Callable[[int], None] | None, budget: float | None) -> T:
            http = encode_xml_request(target, request, self._signer)
            body: bytes | memoryview | None
            if data is None:
                body = http.body
            else:
                body = data.data if isinstance(data, SliceBuffer) else memoryview(data)
                if body.nbytes != request.data_len:
                    raise ValueError(f"{request.op}: data length {body.nbytes} != {request.data_len}")
            response = self._transport.send(
                http, body=body, payload_len=request.data_len or 0, on_progress=on_bytes, budget=budget
            )
            if response.status == 403:
                date = header(response.headers, "Date")
                if date:
                    with contextlib.suppress(TypeError, ValueError):
                        server_date[:] = [parsedate_to_datetime(date).timestamp() - self._clock()]
            return process(response.status, response.headers, response.body)

        def before_retry(error: CosError) -> None:
            skewed = isinstance(error, CosSignatureExpiredError) and error.error_code == "RequestTimeTooSkewed"
            if skewed and server_date:
                self._offset = server_date[0]

        return self._requester.retrying(
            attempt,
            op=request.op,
            path=request.key,
            progress=progress,
            stop=stop,
            on_retry=on_retry,
            before_retry=before_retry,
        )

    # ---------------------------------------------------------------- plain operations
    def head(self, target: XmlTarget, key: str) -> ObjectHead | None:
        """HeadObject, or ``None`` when there is no such object."""
        try:
            return self.call(
                target, XML.prepare_head_object(key), lambda s, h, b: XML.process_head_object(s, h, b, key=key)
            )
        except CosNotFoundError as e:
            if e.status == 404:
                return None
            raise

    def delete(self, target: XmlTarget, key: str) -> None:
        """DeleteObject (deleting a missing key succeeds, as on COS)."""
        self.call(target, XML.prepare_delete_object(key), lambda s, h, b: XML.process_delete_object(s, h, b, key=key))

    def put_empty(self, target: XmlTarget, key: str) -> None:
        self.call(
            target,
            XML.prepare_put_object(key, 0),
            lambda s, h, b: XML.process_put_object(s, h, b, key=key, crc64=0),
            data=b"",
        )

    def list_objects(
        self, target: XmlTarget, *, prefix: str, delimiter: str = "", page_size: int = 1000
    ) -> Iterator[ObjectEntry | str]:
        """Every object (``ObjectEntry``) and common prefix (``str``) under ``prefix``, pages followed."""
        marker = ""
        while True:
            request = XML.prepare_get_bucket(prefix=prefix, delimiter=delimiter, marker=marker, max_keys=page_size)
            page = self.call(target, request, lambda s, h, b: XML.process_get_bucket(s, h, b))
            yield from page.contents
            yield from page.common_prefixes
            following = page.next_page_marker()
            if following is None or following == marker:
                return
            marker = following

    def list_uploads(self, target: XmlTarget, key: str) -> list[UploadEntry]:
        """The unfinished multipart uploads of exactly ``key``, oldest first (pages followed)."""
        found: list[UploadEntry] = []
        markers = ("", "")
        while True:
            request = XML.prepare_list_uploads(prefix=key, key_marker=markers[0], upload_id_marker=markers[1])
            page = self.call(target, request, lambda s, h, b: XML.process_list_uploads(s, h, b))
            found += [u for u in page.uploads if u.key == key]
            following = page.next_page_markers()
            if following is None or following == markers or (page.uploads and page.uploads[-1].key > key):
                return found
            markers = following
