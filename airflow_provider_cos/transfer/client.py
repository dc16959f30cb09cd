"""``CosClient``: the engine's public face. One ``requests.Session`` (pool sized to the workers, keep-alive)
per client, thread-safe, usable from several threads (each ``upload_file`` has its own coordinator).

Nothing here imports Airflow; the hook builds a client from a connection and delegates.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from airflow_provider_cos.protocol.errors import (
    CosAlreadyExistsError,
    CosCancelledError,
    CosError,
    CosNotFoundError,
)
from airflow_provider_cos.protocol.messages import CosTarget, ListPage, StatInfo
from airflow_provider_cos.protocol.operations import Dialect, dialect_for
from airflow_provider_cos.protocol.paths import normalize_file_path, normalize_folder_path, parent_folders
from airflow_provider_cos.protocol.signing import Credentials, Signer
from airflow_provider_cos.protocol.xmlmessages import ObjectEntry
from airflow_provider_cos.protocol.xmloperations import XML, ObjectHead
from airflow_provider_cos.protocol.xmlsigning import XmlCredentials
from airflow_provider_cos.transfer.batch import BatchItem, BatchResult, FileOutcome, run_batch
from airflow_provider_cos.transfer.checkpoint import CheckpointStore
from airflow_provider_cos.transfer.config import TransferConfig
from airflow_provider_cos.transfer.coordinator import ExecutorFactory, TransferCoordinator, thread_executor
from airflow_provider_cos.transfer.download import DownloadResult, FileDownload, PartFetcher
from airflow_provider_cos.transfer.multipart import MultipartUpload
from airflow_provider_cos.transfer.progress import ProgressAggregator, ProgressCallback
from airflow_provider_cos.transfer.requester import Requester, RetryNote
from airflow_provider_cos.transfer.results import UploadResult
from airflow_provider_cos.transfer.transport import Transport
from airflow_provider_cos.transfer.upload import FileUpload, with_bucket
from airflow_provider_cos.transfer.xmlcalls import XmlRequester, object_key, xml_target

_log = logging.getLogger(__name__)
R = TypeVar("R")

#: Codes meaning "no such file or folder" for ``stat`` (-197 is seen for folders in the wild).
NOT_FOUND_CODES = frozenset({-166, -197})


class CosClient:
    """A client of one COS target (endpoint, generation, appid, default bucket).

    ``bucket=`` on every method overrides the target's bucket for that call. ``cancel()`` is sticky:
    running uploads raise :class:`CosCancelledError` promptly and later ones refuse to start.
    ``signer``/``executor_factory``/``clock`` are seams for tests.

    With ``target.api_version == "xml"`` every method speaks the XML API (:mod:`.xmlcalls`, uploads by
    :mod:`.multipart`) with the same arguments and results: paths are ``/key``, a folder is the zero-byte
    object ``key/``; ``security_token`` (temporary credentials) is sent as ``x-cos-security-token``.
    """

    def __init__(
        self,
        *,
        target: CosTarget,
        credentials: Credentials,
        config: TransferConfig | None = None,
        signer: Signer | None = None,
        executor_factory: ExecutorFactory = thread_executor,
        security_token: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self.config = config or TransferConfig()
        self.xml = target.api_version == "xml"
        # xml has no JSON dialect: every method below turns to the XML calls first and never reads it
        self.dialect: Dialect = dialect_for("v2" if self.xml else target.api_version)
        self._signer = signer or Signer(credentials, validity=self.config.signature_validity)
        self._transport = Transport(
            pool_size=self.config.max_workers + 2,
            timeout=self.config.timeout,
            send_block_size=self.config.send_block_size,
        )
        self._requester = Requester(self._signer, self._transport, self.config.retry)
        self._xml = XmlRequester(
            XmlCredentials(credentials.secret_id, credentials.secret_key, security_token),
            self._transport,
            self._requester,
            validity=self.config.signature_validity,
            clock=clock,
        )
        self._executor_factory = executor_factory
        self._lock = threading.Lock()
        self._active: set[TransferCoordinator] = set()
        self._cancelled = threading.Event()

    def __repr__(self) -> str:
        return f"CosClient(target={self.target!r})"

    def __enter__(self) -> CosClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plain operations
    def _target(self, bucket: str | None) -> CosTarget:
        return with_bucket(self.target, bucket)

    def stat(self, path: str, bucket: str | None = None) -> StatInfo | None:
        """The file's or folder's attributes (folder paths end with ``/``), or ``None`` if absent."""
        target = self._target(bucket)
        if self.xml:
            return self._xml_stat(path, target)
        request = self.dialect.prepare_stat(path)
        try:
            info = self._requester.call(
                target, request, lambda s, b: self.dialect.process_stat(s, b, path=request.path)
            )
        except CosNotFoundError as e:
            if e.code in NOT_FOUND_CODES or (e.code is None and e.status == 404):
                return None
            raise
        return info

    def exists(self, path: str, bucket: str | None = None) -> bool:
        return self.stat(path, bucket) is not None

    def delete(self, path: str, bucket: str | None = None) -> None:
        """Delete a file (or an empty folder: path ending with ``/``) with a one-time signature.

        Also discards an unfinished slice upload at that path. A retried delete whose earlier attempt
        already succeeded (the answer was lost) counts as success.
        """
        target = self._target(bucket)
        if self.xml:
            self._xml.delete(xml_target(target), object_key(path))
            return
        request = self.dialect.prepare_delete(path)
        note = RetryNote()
        try:
            self._requester.call(
                target, request, lambda s, b: self.dialect.process_delete(s, b, path=request.path), on_retry=note
            )
        except CosNotFoundError as e:
            if not (note.retried and e.code in NOT_FOUND_CODES):
                raise

    def create_folder(self, path: str, bucket: str | None = None, *, biz_attr: str = "") -> None:
        """Create one folder; its parent must exist. Raises :class:`CosAlreadyExistsError` (-178) if present."""
        target = self._target(bucket)
        if self.xml:
            folder = normalize_folder_path(path)
            if folder != "/":
                if self._xml.head(xml_target(target), object_key(folder)) is not None:
                    raise CosAlreadyExistsError("folder already exists", path=folder)
                self._xml.put_empty(xml_target(target), object_key(folder))
            return
        request = self.dialect.prepare_create_folder(path, biz_attr=biz_attr)
        self._requester.call(target, request, lambda s, b: self.dialect.process_create_folder(s, b, path=request.path))

    def ensure_folders(self, path: str, bucket: str | None = None) -> list[str]:
        """Create the missing parent folders of file ``path`` (outermost first), tolerating -178.

        Returns the folders this call created. One ``stat`` when the direct parent already exists.
        """
        if self.xml:
            return []  # keys need no parent objects in the XML API
        folders = parent_folders(normalize_file_path(path))
        if not folders or self.stat(folders[-1], bucket) is not None:
            return []
        created = []
        for folder in folders:
            try:
                self.create_folder(folder, bucket)
                created.append(folder)
            except CosAlreadyExistsError:
                continue
        return created

    def list(
        self, folder: str, prefix: str = "", bucket: str | None = None, *, page_size: int = 199
    ) -> Iterator[StatInfo]:
        """Every entry of ``folder`` whose name starts with ``prefix``; paging is hidden."""
        target = self._target(bucket)
        folder = normalize_folder_path(folder)
        if self.xml:
            yield from self._xml_list(folder, prefix, target, page_size)
            return
        context = ""
        seen_contexts: set[str] = set()
        while True:
            request = self.dialect.prepare_list(folder, num=page_size, context=context, prefix=prefix)
            page = self._requester.call(target, request, self._list_processor(request.path))
            yield from page.infos
            if page.listover or not page.context or page.context in seen_contexts:
                return
            seen_contexts.add(page.context)
            context = page.context

    # ------------------------------------------------------------------ xml
    def head(self, path: str, bucket: str | None = None) -> ObjectHead | None:
        """``xml`` only: HeadObject of ``/key`` (size, ETag, CRC64, ...), or ``None`` if absent."""
        return self._xml.head(xml_target(self._target(bucket)), object_key(path))

    def list_uploads(self, path: str, bucket: str | None = None) -> builtins.list[str]:
        """``xml`` only: the UploadIds of the unfinished multipart uploads of exactly ``/key``."""
        return [u.upload_id for u in self._xml.list_uploads(xml_target(self._target(bucket)), object_key(path))]

    def _xml_stat(self, path: str, target: CosTarget) -> StatInfo | None:
        xml = xml_target(target)
        if path == "/":  # the bucket itself: one page of one key proves it exists and is readable
            self._xml.call(xml, XML.prepare_get_bucket(max_keys=1), lambda s, h, b: XML.process_get_bucket(s, h, b))
            return _xml_info("/", 0, "", "", None, folder=True)
        head = self._xml.head(xml, object_key(path))
        if head is None:
            return None
        return _xml_info(path, head.size, head.etag, head.last_modified, head.crc64, folder=path.endswith("/"))

    def _xml_list(self, folder: str, prefix: str, target: CosTarget, page_size: int) -> Iterator[StatInfo]:
        base = object_key(folder)
        for entry in self._xml.list_objects(
            xml_target(target), prefix=base + prefix, delimiter="/", page_size=min(page_size, 1000)
        ):
            if isinstance(entry, ObjectEntry):
                if entry.key != base:  # the folder's own marker object
                    yield _xml_info("/" + entry.key, entry.size, entry.etag, entry.last_modified, None, folder=False)
            else:
                yield _xml_info("/" + entry, 0, "", "", None, folder=True)

    def _list_processor(self, path: str) -> Callable[[int, bytes], ListPage]:
        def process(status: int, body: bytes) -> ListPage:
            return self.dialect.process_list(status, body, path=path)

        return process

    # ------------------------------------------------------------------ upload
    def upload_file(
        self,
        local_path: str,
        cos_path: str,
        bucket: str | None = None,
        insert_only: bool = False,
        biz_attr: str | None = None,
        progress: ProgressCallback | None = None,
        checkpoint_store: CheckpointStore | None = None,
        *,
        create_parents: bool = True,
        executor_factory: ExecutorFactory | None = None,
    ) -> UploadResult:
        """Upload one local file to ``cos_path``; see :mod:`airflow_provider_cos.transfer.upload`.
        (``executor_factory``: where the slices run, e.g. a batch's shared pool; default the client's.)

        Raises a typed :class:`CosError`: :class:`CosFileChangedError` if the file changed meanwhile,
        :class:`CosIntegrityError` if the stored object does not match, :class:`CosCancelledError` after
        :meth:`cancel`, :class:`CosAlreadyExistsError` with ``insert_only`` on an existing path, ...
        """

        def run(target: CosTarget, coordinator: TransferCoordinator) -> UploadResult:
            if self.xml:
                return MultipartUpload(
                    calls=self._xml,
                    target=target,
                    xml=xml_target(target),
                    config=self.config,
                    coordinator=coordinator,
                    local_path=local_path,
                    cos_path=cos_path,
                    insert_only=insert_only,
                    checkpoint_store=checkpoint_store,
                ).run()
            return FileUpload(
                requester=self._requester,
                dialect=self.dialect,
                target=target,
                config=self.config,
                coordinator=coordinator,
                local_path=local_path,
                cos_path=cos_path,
                insert_only=insert_only,
                biz_attr=biz_attr,
                checkpoint_store=checkpoint_store,
                stat=lambda p, t: self.stat(p, t.bucket),
                delete=lambda p, t: self.delete(p, t.bucket),
                ensure_parents=(lambda: self.ensure_folders(cos_path, target.bucket)) if create_parents else None,
            ).run()

        return self._run(cos_path, run, bucket, progress, what="upload", executor_factory=executor_factory)

    def upload_files(
        self,
        items: Sequence[BatchItem],
        bucket: str | None = None,
        insert_only: bool = False,
        biz_attr: str | None = None,
        checkpoint_store: CheckpointStore | None = None,
        *,
        create_parents: bool = True,
        skip_identical: bool = True,
        on_done: Callable[[FileOutcome, int, int], object] | None = None,
    ) -> BatchResult:
        """Upload many files; see :mod:`airflow_provider_cos.transfer.batch` (one bounded pool for all
        their slices, files already stored with the same content skipped, every outcome reported).
        Never raises for a file's failure: call :meth:`BatchResult.raise_for_failures`."""
        target = self._target(bucket)

        def upload_one(item: BatchItem, factory: ExecutorFactory) -> UploadResult:
            return self.upload_file(
                item.local_path,
                item.cos_path,
                bucket,
                insert_only,
                biz_attr,
                checkpoint_store=checkpoint_store,
                create_parents=create_parents,
                executor_factory=factory,
            )

        return run_batch(
            items,
            upload_one,
            lambda p: self.stat(p, target.bucket),
            target.fileid,
            max_workers=self.config.max_workers,
            crc=self.xml,
            skip_identical=skip_identical,
            on_done=on_done,
            stop=self._cancelled,
        )

    # ------------------------------------------------------------------ download
    def download_file(
        self,
        cos_path: str,
        local_path: str,
        bucket: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> DownloadResult:
        """Download the object at ``cos_path`` into ``local_path``; see :mod:`airflow_provider_cos.transfer.download`.

        ``local_path`` is replaced atomically once the bytes are verified, never half-written. Raises a
        typed :class:`CosError`: :class:`CosNotFoundError` for a missing object, :class:`CosIntegrityError`
        if the bytes do not match the object's SHA-1, :class:`CosLocalFileError` for local I/O,
        :class:`CosCancelledError` after :meth:`cancel`.
        """
        path = normalize_file_path(cos_path)

        def run(target: CosTarget, coordinator: TransferCoordinator) -> DownloadResult:
            return FileDownload(
                fetch=self._part_fetcher(target, path),
                target=target,
                config=self.config,
                coordinator=coordinator,
                cos_path=path,
                local_path=local_path,
                stat=lambda p, t: self.stat(p, t.bucket),
            ).run()

        return self._run(path, run, bucket, progress, what="download")

    def read_range(self, cos_path: str, start: int, length: int, bucket: str | None = None) -> bytes:
        """Exactly ``length`` bytes of the object from ``start`` (one ranged request, retried by the policy)."""
        if length <= 0:
            return b""
        path = normalize_file_path(cos_path)
        return self._part_fetcher(self._target(bucket), path)(start, length, threading.Event(), lambda _e: None)

    def _part_fetcher(self, target: CosTarget, path: str) -> PartFetcher:
        """One ranged read of ``path``: JSON, a signed GET of the object URL; XML, GetObject with Range."""
        if self.xml:
            xml, key = xml_target(target), object_key(path)

            def fetch_xml(
                start: int, length: int, stop: threading.Event, on_retry: Callable[[CosError], None]
            ) -> bytes:
                request = XML.prepare_get_object(key, start=start, end=start + length - 1)
                return self._xml.call(
                    xml,
                    request,
                    lambda s, h, b: XML.process_get_object(s, h, b, key=key, start=start).data,
                    stop=stop,
                    on_retry=on_retry,
                )

            return fetch_xml

        def fetch_json(start: int, length: int, stop: threading.Event, on_retry: Callable[[CosError], None]) -> bytes:
            request = self.dialect.prepare_download(path, start=start, length=length)
            return self._requester.call(
                target,
                request,
                lambda s, b: self.dialect.process_download(s, b, path=path, start=start, length=length),
                stop=stop,
                on_retry=on_retry,
            )

        return fetch_json

    def _run(
        self,
        cos_path: str,
        transfer: Callable[[CosTarget, TransferCoordinator], R],
        bucket: str | None,
        progress: ProgressCallback | None,
        *,
        what: str,
        executor_factory: ExecutorFactory | None = None,
    ) -> R:
        """Run one transfer with its own coordinator, cancellable through :meth:`cancel`."""
        if self._cancelled.is_set():
            raise CosCancelledError("client was cancelled", path=cos_path)
        target = self._target(bucket)
        coordinator = TransferCoordinator(
            ProgressAggregator(0, progress), executor_factory=executor_factory or self._executor_factory
        )
        with self._lock:
            self._active.add(coordinator)
        try:
            result = transfer(target, coordinator)
            if coordinator.cancelled:
                raise CosCancelledError(f"{what} cancelled", path=cos_path)
            return result
        except CosCancelledError:
            raise
        except Exception as e:
            if coordinator.cancelled:
                raise CosCancelledError(f"{what} cancelled", path=cos_path) from e
            raise
        finally:
            with self._lock:
                self._active.discard(coordinator)

    # ------------------------------------------------------------------ lifecycle
    def cancel(self) -> None:
        """Stop every running upload of this client (thread-safe): no new slices start, ``upload_file``
        raises :class:`CosCancelledError` promptly. In-flight requests finish or time out in background."""
        self._cancelled.set()
        with self._lock:
            active = list(self._active)
        for coordinator in active:
            coordinator.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def close(self) -> None:
        """Release the connection pool. The client is unusable afterwards."""
        self._transport.close()


def _xml_info(path: str, size: int, etag: str, last_modified: str, crc: int | None, *, folder: bool) -> StatInfo:
    """An XML object or common prefix as the :class:`StatInfo` the JSON generations return (``filesize`` =
    ``filelen`` = the size: an XML object exists only once complete); ``raw`` holds the XML fields."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    raw = {
        "name": name,
        "key": path.lstrip("/"),
        "filesize": size,
        "filelen": size,
        "etag": etag,
        "last_modified": last_modified,
        "crc64": None if crc is None else str(crc),
    }
    return StatInfo(
        name=name,
        is_folder=folder,
        filesize=None if folder else size,
        filelen=None if folder else size,
        sha=None,
        ctime=None,
        mtime=None,
        access_url=None,
        source_url=None,
        preview_url=None,
        biz_attr=None,
        raw=raw,
    )
