"""The XML API's upload strategy: PutObject below the simple threshold, multipart above it.

One read of the file: each part is read with ``preadv`` into its thread's reused buffer and its
CRC-64/ECMA computed from that buffer (XML has no instant upload, so no hash pass runs first). Each
UploadPart's ``x-cos-hash-crc64ecma`` is compared with ours (a mismatch resends the part); the whole
object's CRC, folded from the parts, is compared with Complete's and, when ``TransferConfig.verify``,
with HeadObject's. Complete lists parts ``1..N``; an error inside Complete's 200 is an error.

Parts: the connection's slice size, at least 1 MiB (COS's smallest part), raised to a multiple of
1 MiB so that no file needs more than 10000 parts. Memory: one buffer of one part per sending thread.

Resume. The checkpoint names the UploadId this upload opened (and the file identity and part size);
without one, ListMultipartUploads finds the unfinished uploads of the key (newest first) and
ListParts (pages followed) what each holds. Nothing cached is trusted: a listed part is reused only
when its size and its ETag (the MD5 of its bytes) equal those of the file's part, read once in this
process (its CRC is computed in the same read). A part of our own upload that differs is sent again;
an upload we did not open (no checkpoint names it) is used only if every listed part matches - else it
may be another writer's, and is left alone. The upload is aborted only when it cannot be resumed: the
file changed, or its part size does not fit the file. A cancel or a killed process leaves it for the
next try.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from airflow_provider_cos.protocol.crc64 import crc64, crc64_fold, format_crc64
from airflow_provider_cos.protocol.errors import (
    CosAlreadyExistsError,
    CosError,
    CosFileChangedError,
    CosIntegrityError,
    CosSessionError,
)
from airflow_provider_cos.protocol.messages import CosTarget
from airflow_provider_cos.protocol.xmlmessages import CompletePart, PartEntry, unquote_etag
from airflow_provider_cos.protocol.xmloperations import (
    MAX_PART_NUMBER,
    MIN_PART_SIZE,
    XML,
    ObjectHead,
    UploadedPart,
    XmlTarget,
    content_md5,
    validate_key,
)
from airflow_provider_cos.transfer.buffers import ThreadBuffers, preadv_exact
from airflow_provider_cos.transfer.checkpoint import CheckpointStore, checkpoint_key
from airflow_provider_cos.transfer.config import TransferConfig
from airflow_provider_cos.transfer.coordinator import TransferCoordinator
from airflow_provider_cos.transfer.hashing import FileIdentity, check_ends_at, check_unchanged, open_regular_file
from airflow_provider_cos.transfer.plan import Slice, choose_simple
from airflow_provider_cos.transfer.requester import RetryNote
from airflow_provider_cos.transfer.results import UploadResult
from airflow_provider_cos.transfer.xmlcalls import XmlRequester, object_key

_log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "xml-multipart-1"
PART_ALIGN = 1024 * 1024


def part_size_for(filesize: int, configured: int) -> int:
    """The part size: ``configured``, at least 1 MiB, raised (to a multiple of 1 MiB) to fit 10000 parts."""
    size = max(configured, MIN_PART_SIZE)
    needed = -(-filesize // MAX_PART_NUMBER)
    if needed > size:
        size = -(-needed // PART_ALIGN) * PART_ALIGN
    return size


def plan_parts(filesize: int, part_size: int) -> list[Slice]:
    """Parts ``1..N`` as slices (part number = index + 1)."""
    return [
        Slice(off, min(part_size, filesize - off), off + part_size >= filesize) for off in range(0, filesize, part_size)
    ]


@dataclass(frozen=True)
class MultipartCheckpoint:
    """The resume state of one multipart upload: which UploadId, for which file and with which part size."""

    local_path: str
    bucket: str
    cos_path: str
    upload_id: str
    part_size: int
    size: int
    mtime_ns: int
    dev: int
    ino: int
    ctime_ns: int
    format: str = CHECKPOINT_FORMAT

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MultipartCheckpoint | None:
        try:
            if data.get("format") != CHECKPOINT_FORMAT:
                return None
            return cls(**{k: data[k] for k in cls.__dataclass_fields__})
        except (KeyError, TypeError):
            return None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Upload:
    upload_id: str
    part_size: int
    listed: dict[int, PartEntry]
    ours: bool  # this upload opened it (a checkpoint names it): differing parts may be replaced


class _NotOurs(Exception):
    """A found upload holds a part of other content: it is not ours to continue."""


class MultipartUpload:
    """The state machine of one xml ``upload_file`` call. Not reusable; one per call."""

    #: ListParts page size (COS's maximum; tests lower it to exercise paging).
    list_page = 1000

    def __init__(
        self,
        *,
        calls: XmlRequester,
        target: CosTarget,
        xml: XmlTarget,
        config: TransferConfig,
        coordinator: TransferCoordinator,
        local_path: str,
        cos_path: str,
        insert_only: bool,
        checkpoint_store: CheckpointStore | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.calls = calls
        self.target = target
        self.xml = xml
        self.config = config
        self.coord = coordinator
        self.local_path = os.path.abspath(os.fspath(local_path))
        self.key = validate_key(object_key(cos_path))
        self.cos_path = "/" + self.key
        self.insert_only = insert_only
        self.store = checkpoint_store
        self._clock = clock
        self._ckey = checkpoint_key(target.endpoint, target.appid, xml.bucket, self.cos_path, self.local_path)
        self._fd = -1
        self._identity = FileIdentity(0, 0)
        self._buffers = ThreadBuffers()
        self._resumed = False
        self._crcs: dict[int, int] = {}
        self._etags: dict[int, str] = {}

    # ------------------------------------------------------------------ entry point
    def run(self) -> UploadResult:
        started = self._clock()
        self._fd, self._identity = open_regular_file(self.local_path)
        try:
            size = self._identity.size
            self.coord.progress.total = size
            if self.insert_only and self.calls.head(self.xml, self.key) is not None:
                raise CosAlreadyExistsError(f"{self.key} exists and insert_only is set", path=self.cos_path)
            if size == 0 or choose_simple(size, self.config.simple_threshold):
                crc, etag = self._simple()
                method, parts = "simple", 0
            else:
                crc, etag, parts = self._multipart()
                method = "multipart"
            self.coord.progress.flush()
            if self.config.verify:
                self._verify(crc)
            self._drop_checkpoint()
        finally:
            self.coord.when_idle(functools.partial(os.close, self._fd))
        url = self.xml.url(XML.prepare_head_object(self.key))
        public = f"https://{self.xml.host}/{quote(self.key, safe='/-_.~')}"
        return UploadResult(
            resource_path=f"/{self.target.appid}/{self.target.bucket}{self.cos_path}",
            access_url=public,
            source_url=public,
            url=url,
            size=self._identity.size,
            sha1="",
            instant=False,
            bytes_sent=self.coord.bytes_sent,
            slices_sent=parts,
            elapsed=self._clock() - started,
            resumed=self._resumed,
            method=method,
            etag=etag,
            crc64=format_crc64(crc),
        )

    def _retry_hook(self, _error: CosError) -> None:
        self.coord.record_retry()

    def _check_unchanged(self) -> None:
        check_unchanged(self.local_path, self._fd, self._identity)

    def _verify(self, crc: int) -> None:
        head = self.calls.head(self.xml, self.key)
        if head is None:
            raise CosIntegrityError("object missing right after the upload completed", path=self.cos_path)
        _check_head(head, self._identity.size, crc, self.cos_path)

    # ------------------------------------------------------------------ PutObject
    def _simple(self) -> tuple[int, str]:
        size = self._identity.size
        data = bytearray(size)
        preadv_exact(self._fd, memoryview(data), 0, path=self.local_path)
        crc = crc64(data)
        self._check_unchanged()
        check_ends_at(self._fd, size, self.local_path)
        key = self.key
        result = self.calls.call(
            self.xml,
            # Content-MD5: COS refuses (BadDigest) a body that changed on the way instead of storing it; the
            # CRC-64 in the answer alone would only tell after the wrong bytes replaced the object.
            XML.prepare_put_object(key, size, content_md5=content_md5(data)),
            lambda s, h, b: XML.process_put_object(s, h, b, key=key, crc64=crc),
            data=data,
            progress=self.coord.progress.add,
            stop=self.coord.stop,
            on_retry=self._retry_hook,
        )
        self.coord.record_sent(size, slices=0)
        return crc, result.etag

    # ------------------------------------------------------------------ checkpoint
    def _load_checkpoint(self) -> MultipartCheckpoint | None:
        if self.store is None:
            return None
        raw = self.store.load(self._ckey)
        if raw is None:
            return None
        checkpoint = MultipartCheckpoint.from_dict(raw)
        if checkpoint is None or (checkpoint.local_path, checkpoint.bucket, checkpoint.cos_path) != (
            self.local_path,
            self.xml.bucket,
            self.cos_path,
        ):
            _log.info("discarding a checkpoint that does not describe this upload of %s", self.local_path)
            self.store.delete(self._ckey)
            return None
        return checkpoint

    def _save_checkpoint(self, upload: _Upload) -> None:
        if self.store is None:
            return
        i = self._identity
        self.store.save(
            self._ckey,
            MultipartCheckpoint(
                local_path=self.local_path,
                bucket=self.xml.bucket,
                cos_path=self.cos_path,
                upload_id=upload.upload_id,
                part_size=upload.part_size,
                size=i.size,
                mtime_ns=i.mtime_ns,
                dev=i.dev,
                ino=i.ino,
                ctime_ns=i.ctime_ns,
            ).to_dict(),
        )

    def _drop_checkpoint(self) -> None:
        if self.store is not None:
            self.store.delete(self._ckey)

    # ------------------------------------------------------------------ finding an upload to continue
    def _list_parts(self, upload_id: str) -> dict[int, PartEntry] | None:
        """Every part the server holds for ``upload_id`` (pages followed), or ``None`` if it is gone."""
        parts: dict[int, PartEntry] = {}
        marker = 0
        key = self.key
        while True:
            try:
                page = self.calls.call(
                    self.xml,
                    XML.prepare_list_parts(
                        key, upload_id=upload_id, part_number_marker=marker, max_parts=self.list_page
                    ),
                    lambda s, h, b: XML.process_list_parts(s, h, b, key=key),
                    stop=self.coord.stop,
                    on_retry=self._retry_hook,
                )
            except CosSessionError:  # NoSuchUpload
                return None
            parts.update((p.part_number, p) for p in page.parts)
            following = page.next_page_marker()
            if following is None or following <= marker:
                return parts
            marker = following

    def _fits(self, parts: dict[int, PartEntry], part_size: int) -> bool:
        """Every listed part has the size the file's part of that number has with ``part_size``."""
        size = self._identity.size
        if part_size < MIN_PART_SIZE or -(-size // part_size) > MAX_PART_NUMBER:
            return False
        count = -(-size // part_size)
        return all(n <= count and p.size == min(part_size, size - (n - 1) * part_size) for n, p in parts.items())

    def _abort(self, upload_id: str, why: str) -> None:
        _log.warning("aborting multipart upload %s of %s: %s", upload_id, self.key, why)
        try:
            self.calls.call(
                self.xml,
                XML.prepare_abort(self.key, upload_id=upload_id),
                lambda s, h, b: XML.process_abort(s, h, b, key=self.key),
            )
        except CosError as e:  # best effort: an unfinished upload costs storage, not correctness
            _log.warning("could not abort upload %s of %s: %s", upload_id, self.key, e)

    def _from_checkpoint(self, checkpoint: MultipartCheckpoint) -> _Upload | None:
        parts = self._list_parts(checkpoint.upload_id)
        if parts is None:
            _log.info("the checkpoint's upload %s is gone; starting another", checkpoint.upload_id)
            return None
        if not self._fits(parts, checkpoint.part_size):
            self._abort(checkpoint.upload_id, "its part size does not fit the file any more")
            return None
        differs = FileIdentity(
            checkpoint.size, checkpoint.mtime_ns, checkpoint.dev, checkpoint.ino, checkpoint.ctime_ns
        ).differences(self._identity)
        _log.info(
            "resuming multipart upload %s (%d parts held%s); every held part is checked against the file",
            checkpoint.upload_id,
            len(parts),
            f"; the file changed since: {differs}" if differs else "",
        )
        return _Upload(checkpoint.upload_id, checkpoint.part_size, parts, ours=True)

    def _found_uploads(self, skip: set[str]) -> list[_Upload]:
        """Unfinished uploads of the key whose listed parts fit the file by size, newest first."""
        found: list[_Upload] = []
        for entry in reversed(self.calls.list_uploads(self.xml, self.key)):
            if entry.upload_id in skip:
                continue
            parts = self._list_parts(entry.upload_id)
            if not parts:
                continue
            part_size = max(p.size for p in parts.values())  # every part but the file's last one has it
            if self._fits(parts, part_size):
                found.append(_Upload(entry.upload_id, part_size, parts, ours=False))
        return found

    def _initiate(self) -> _Upload:
        key = self.key
        started = self.calls.call(
            self.xml,
            XML.prepare_initiate(key),
            lambda s, h, b: XML.process_initiate(s, h, b, key=key),
            stop=self.coord.stop,
            on_retry=self._retry_hook,
        )
        part_size = part_size_for(self._identity.size, self.config.slice_size_for("xml"))
        return _Upload(started.upload_id, part_size, {}, ours=True)

    # ------------------------------------------------------------------ multipart
    def _multipart(self) -> tuple[int, str, int]:
        checkpoint = self._load_checkpoint()
        candidates: list[_Upload] = []
        tried: set[str] = set()
        if checkpoint is not None:
            tried.add(checkpoint.upload_id)
            adopted = self._from_checkpoint(checkpoint)
            if adopted is not None:
                candidates.append(adopted)
        else:
            candidates = self._found_uploads(tried)
        for _round in range(self.config.max_resume_rounds):
            upload = candidates.pop(0) if candidates else self._initiate()
            tried.add(upload.upload_id)
            self._save_checkpoint(upload)
            try:
                return self._send_and_complete(upload)
            except _NotOurs as e:
                _log.info(
                    "unfinished upload %s at %s is not this file's (%s): left alone", upload.upload_id, self.key, e
                )
            except CosFileChangedError:
                self._abort(upload.upload_id, "the local file changed during the upload")
                self._drop_checkpoint()
                raise
            except CosSessionError as e:  # NoSuchUpload / InvalidPart: the server lost (part of) it
                _log.warning("multipart upload %s: %s; asking the server what it holds", upload.upload_id, e)
                parts = self._list_parts(upload.upload_id)
                if parts is not None and upload.ours:
                    candidates.insert(0, _Upload(upload.upload_id, upload.part_size, parts, ours=True))
        raise CosSessionError(
            f"upload did not complete after {self.config.max_resume_rounds} rounds", path=self.cos_path
        )

    def _send_and_complete(self, upload: _Upload) -> tuple[int, str, int]:
        size = self._identity.size
        parts = plan_parts(size, upload.part_size)
        self._crcs.clear()
        self._etags.clear()
        held = [p for i, p in enumerate(parts, 1) if i in upload.listed]
        if held:  # first the proof: read each held part once (CRC and MD5), compare with the server's ETag
            self.coord.run_slices(
                held, functools.partial(self._check_held, upload, parts), max_in_flight=self.config.max_workers
            )
            found = sum(parts[n - 1].length for n in self._etags)
            self._resumed = bool(found)
            self.coord.progress.position(found)
        todo = [p for i, p in enumerate(parts, 1) if i not in self._etags]
        self.coord.run_slices(
            todo, functools.partial(self._send_part, upload, parts), max_in_flight=self.config.max_workers
        )
        self._check_unchanged()
        self.coord.check_cancelled()
        whole = crc64_fold((self._crcs[n], parts[n - 1].length) for n in range(1, len(parts) + 1))
        etag = self._complete(upload, [CompletePart(n, self._etags[n]) for n in range(1, len(parts) + 1)], whole)
        return whole, etag, len(todo)

    def _number(self, parts: list[Slice], slc: Slice) -> int:
        return slc.offset // parts[0].length + 1

    def _check_held(self, upload: _Upload, parts: list[Slice], slc: Slice) -> None:
        number = self._number(parts, slc)
        buf = self._buffers.get()
        buf.load(self._fd, slc.length, slc.offset, path=self.local_path)
        self._crcs[number] = crc64(buf.data)
        listed = upload.listed[number]
        if unquote_etag(listed.etag).lower() == hashlib.md5(buf.data).hexdigest():
            self._etags[number] = listed.etag
        elif not upload.ours:
            raise _NotOurs(f"part {number} holds other bytes")

    def _send_part(self, upload: _Upload, parts: list[Slice], slc: Slice) -> UploadedPart:
        if self.coord.stop.is_set():
            self.coord.check_cancelled()
        number = self._number(parts, slc)
        buf = self._buffers.get()  # this thread's buffer: free, its previous part's call has returned
        buf.load(self._fd, slc.length, slc.offset, path=self.local_path)
        crc = crc64(buf.data)  # computed from the bytes just read: no other pass over the file
        key = self.key
        request = XML.prepare_upload_part(key, upload_id=upload.upload_id, part_number=number, data_len=slc.length)
        part = self.calls.call(
            self.xml,
            request,
            lambda s, h, b: XML.process_upload_part(s, h, b, key=key, part_number=number, crc64=crc),
            data=buf,
            progress=self.coord.progress.add,
            stop=self.coord.stop,
            on_retry=self._retry_hook,
        )
        self._crcs[number] = crc
        self._etags[number] = part.etag
        self.coord.record_sent(slc.length)
        return part

    def _complete(self, upload: _Upload, parts: list[CompletePart], whole: int) -> str:
        key = self.key
        note = RetryNote(self._retry_hook)
        try:
            result = self.calls.call(
                self.xml,
                XML.prepare_complete(key, upload_id=upload.upload_id, parts=parts),
                lambda s, h, b: XML.process_complete(s, h, b, key=key, crc64=whole),
                stop=self.coord.stop,
                on_retry=note,
            )
        except CosSessionError:
            # an earlier try may have completed before its answer was lost: is the object this file?
            head = self.calls.head(self.xml, key) if note.retried else None
            if head is None or head.crc64 != whole or head.size != self._identity.size:
                raise
            return head.etag
        return result.upload.etag


def _check_head(head: ObjectHead, size: int, crc: int, path: str) -> None:
    if head.size != size:
        raise CosIntegrityError(f"stored size {head.size} != local size {size}", path=path)
    if head.crc64 is not None and head.crc64 != crc:
        raise CosIntegrityError(f"stored CRC64 {head.crc64} != local CRC64 {crc}", path=path)
