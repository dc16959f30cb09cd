"""One file upload: simple ``op=upload`` below the threshold, otherwise hash → init → slices → complete.

The server's word wins: its ``slice_size``, its ``offset`` (v1), its list of stored slices (v2) and its
``serial_upload``. Every slice upload hashes the file first, a resume too: a checkpoint only names the
session to ask about and the sessions this upload opened before, and is trusted only when the SHA-1
computed now equals the one it records. Completion is never requested for a file that changed: its
identity (size, mtime, device, inode, ctime) is checked before the final v1 slice and before the v2
finish; after completion ``stat`` confirms size and the SHA-1 computed in this process. A completion the
server refuses with -174 (its SHA-1 of the session's bytes is not the file's: bytes altered on the way)
deletes that session and sends the file again, once (:meth:`FileUpload._restart_after_mismatch`).

v1 (``upload_slice``): non-final slices may go in parallel; the final slice (the one that ends the
file) is sent only after every other slice is acknowledged, because the server completes the object
on it. Completion = a data answer carrying the URLs; if the final answer lacks them, re-init with the
``session`` to learn the missing offset and continue from there.

v2: init (with ``sha`` + ``uploadparts``) → data slices in parallel → ``upload_slice_finish``; -4019 →
``upload_slice_list`` → send only the missing slices → finish. A listed session for another file
(size or SHA-1 differ) is deleted and the upload starts over: never a wrong object.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from airflow_provider_cos.protocol.errors import (
    SHA_MISMATCH,
    CosAlreadyExistsError,
    CosConfigError,
    CosError,
    CosFileChangedError,
    CosIntegrityError,
    CosNotFoundError,
    CosProtocolError,
    CosSessionError,
    CosUnfinishedUploadError,
    CosUploadConflictError,
)
from airflow_provider_cos.protocol.messages import CosTarget, InstantUpload, SliceAck, SliceSession, StatInfo
from airflow_provider_cos.protocol.operations import Dialect
from airflow_provider_cos.protocol.paths import ObjectUrls, normalize_file_path
from airflow_provider_cos.transfer.buffers import ThreadBuffers, preadv_exact
from airflow_provider_cos.transfer.checkpoint import CheckpointStore, UploadCheckpoint, checkpoint_key
from airflow_provider_cos.transfer.config import TransferConfig
from airflow_provider_cos.transfer.coordinator import TransferCoordinator
from airflow_provider_cos.transfer.hashing import (
    FileDigest,
    FileIdentity,
    check_ends_at,
    check_unchanged,
    hash_file,
    open_regular_file,
)
from airflow_provider_cos.transfer.plan import Slice, SlicePlan, choose_simple
from airflow_provider_cos.transfer.requester import Requester, RetryNote
from airflow_provider_cos.transfer.results import UploadResult

_log = logging.getLogger(__name__)

StatFn = Callable[[str, CosTarget], "StatInfo | None"]
DeleteFn = Callable[[str, CosTarget], None]


@dataclass
class _Outcome:
    urls: ObjectUrls
    instant: bool


class FileUpload:
    """The state machine of one ``upload_file`` call. Not reusable; one per call."""

    def __init__(
        self,
        *,
        requester: Requester,
        dialect: Dialect,
        target: CosTarget,
        config: TransferConfig,
        coordinator: TransferCoordinator,
        local_path: str,
        cos_path: str,
        insert_only: bool,
        biz_attr: str | None,
        checkpoint_store: CheckpointStore | None,
        stat: StatFn,
        delete: DeleteFn,
        ensure_parents: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requester = requester
        self.dialect = dialect
        self.target = target
        self.config = config
        self._slice_size = config.slice_size_for(target.api_version)  # the size requested of the server
        self.coord = coordinator
        self.local_path = os.path.abspath(os.fspath(local_path))
        self.cos_path = normalize_file_path(cos_path)
        self.insert_only = insert_only
        self.biz_attr = biz_attr
        self.store = checkpoint_store
        self._stat = stat
        self._delete = delete
        self._ensure_parents = ensure_parents
        self._clock = clock
        self._key = checkpoint_key(target.endpoint, target.appid, target.bucket, self.cos_path, self.local_path)
        self._fd = -1
        self._identity = FileIdentity(0, 0)
        self._resumed = False
        self._hash_seconds = 0.0
        self._own_sessions: set[str] = set()  # sessions this upload opened (now or in an earlier try)
        self._earlier: tuple[str | None, str | None] = (None, None)  # (session, SHA-1) of our other content
        self._sessions_lost = 0  # v1: how often our open session disappeared from the server
        self._mismatch_restarts = 0  # sessions discarded because the server's SHA-1 of their bytes was not ours
        self._buffers = ThreadBuffers()

    # ------------------------------------------------------------------ entry point
    def run(self) -> UploadResult:
        started = self._clock()
        self._fd, self._identity = open_regular_file(self.local_path)
        try:
            if self._ensure_parents is not None:  # only once the local file is known to be readable
                self._ensure_parents()
            self.coord.progress.total = self._identity.size
            if choose_simple(self._identity.size, self.config.simple_threshold):
                sha1, outcome = self._simple()
                method = "simple"
            else:
                sha1, outcome = self._sliced()
                method = "instant" if outcome.instant else "slice"
            self.coord.progress.flush()
            if self.config.verify:
                self._verify(sha1)
            if self.store is not None and method != "simple":
                self.store.delete(self._key)
        finally:
            self.coord.when_idle(functools.partial(os.close, self._fd))
        return UploadResult(
            resource_path=outcome.urls.resource_path,
            access_url=outcome.urls.access_url,
            source_url=outcome.urls.source_url,
            url=outcome.urls.url,
            size=self._identity.size,
            sha1=sha1,
            instant=outcome.instant,
            bytes_sent=self.coord.bytes_sent,
            slices_sent=self.coord.slices_sent,
            elapsed=self._clock() - started,
            resumed=self._resumed,
            method=method,
            hash_seconds=self._hash_seconds,
        )

    # ------------------------------------------------------------------ helpers
    def _call_process(self, fn: Callable[..., object]) -> Callable[[int, bytes], object]:
        path = self.cos_path
        return lambda status, body: fn(status, body, path=path)

    def _check_unchanged(self) -> None:
        check_unchanged(self.local_path, self._fd, self._identity)

    def _verify(self, sha1: str) -> None:
        info = self._stat(self.cos_path, self.target)
        if info is None:
            raise CosIntegrityError("object missing right after the upload completed", path=self.cos_path)
        if info.filesize is not None and info.filesize != self._identity.size:
            raise CosIntegrityError(
                f"stored size {info.filesize} != local size {self._identity.size}", path=self.cos_path
            )
        if info.filelen is not None and info.filelen != self._identity.size:
            raise CosIntegrityError(
                f"stored length {info.filelen} != local size {self._identity.size}", path=self.cos_path
            )
        if info.sha and info.sha.split("_")[0].lower() != sha1:
            raise CosIntegrityError(f"stored SHA-1 {info.sha} != local SHA-1 {sha1}", path=self.cos_path)

    def _retry_hook(self, _error: CosError) -> None:
        self.coord.record_retry()

    # ------------------------------------------------------------------ simple upload
    def _simple(self) -> tuple[str, _Outcome]:
        size = self._identity.size
        data = bytearray(size)
        preadv_exact(self._fd, memoryview(data), 0, path=self.local_path)
        sha1 = hashlib.sha1(data).hexdigest()
        self._check_unchanged()
        check_ends_at(self._fd, size, self.local_path)
        request = self.dialect.prepare_upload(
            self.cos_path, size, sha=sha1, biz_attr=self.biz_attr, insert_only=self.insert_only
        )
        note = RetryNote(self._retry_hook)
        try:
            urls = self.requester.call(
                self.target,
                request,
                self._call_process(self.dialect.process_upload),
                data=data,
                progress=self.coord.progress.add,
                stop=self.coord.stop,
                on_retry=note,
            )
        except CosAlreadyExistsError:
            # insertOnly and an earlier attempt may have landed before its answer was lost: ours?
            info = self._stat(self.cos_path, self.target) if note.retried else None
            if info is None or not info.sha or info.sha.split("_")[0].lower() != sha1:
                raise
            urls = _urls_from_stat(info, self.target, self.cos_path)
        assert isinstance(urls, ObjectUrls)
        self.coord.record_sent(size, slices=0)
        return sha1, _Outcome(urls, instant=False)

    # ------------------------------------------------------------------ checkpoint
    def _load_checkpoint(self) -> UploadCheckpoint | None:
        """The stored checkpoint of this destination, or ``None``; a malformed or foreign one is deleted."""
        if self.store is None:
            return None
        raw = self.store.load(self._key)
        if raw is None:
            return None
        checkpoint = UploadCheckpoint.from_dict(raw)
        if checkpoint is None or not checkpoint.same_destination(
            local_path=self.local_path,
            api_version=self.target.api_version,
            bucket=self.target.bucket,
            cos_path=self.cos_path,
        ):
            _log.info("discarding a checkpoint that does not describe this upload of %s", self.local_path)
            self.store.delete(self._key)
            return None
        return checkpoint

    def _adopt_checkpoint(self, checkpoint: UploadCheckpoint | None, digest: FileDigest) -> str | None:
        """The session to continue, trusted only when the SHA-1 just computed equals the checkpoint's.

        Either way the sessions the checkpoint names are remembered as ours (a leftover of ours may be
        replaced; another writer's never is).
        """
        if checkpoint is None:
            return None
        self._own_sessions |= checkpoint.own_sessions
        if checkpoint.same_content(size=digest.identity.size, sha1=digest.sha1):
            _log.info(
                "resuming: the file's SHA-1, computed again, matches the checkpoint (session %s)",
                "known" if checkpoint.session else "none",
            )
            self._earlier = (checkpoint.earlier_session, checkpoint.earlier_sha1)
            return checkpoint.session
        recorded = FileIdentity(
            checkpoint.size, checkpoint.mtime_ns, checkpoint.dev, checkpoint.ino, checkpoint.ctime_ns
        )
        _log.warning(
            "the checkpoint of %s describes other content (SHA-1 %s, now %s; %s): not resumed",
            self.local_path,
            checkpoint.sha1,
            digest.sha1,
            recorded.differences(digest.identity) or "same size, mtime, inode and ctime",
        )
        self._earlier = (checkpoint.session or checkpoint.earlier_session, checkpoint.sha1)
        return None

    def _save_checkpoint(self, digest: FileDigest, session: str | None, slice_size: int | None) -> None:
        if session is not None:
            self._own_sessions.add(session)
            self._earlier = (None, None)  # our new session replaced any earlier one at this path
        if self.store is None:
            return
        identity = digest.identity
        checkpoint = UploadCheckpoint(
            local_path=self.local_path,
            size=identity.size,
            mtime_ns=identity.mtime_ns,
            dev=identity.dev,
            ino=identity.ino,
            ctime_ns=identity.ctime_ns,
            sha1=digest.sha1,
            api_version=self.target.api_version,
            bucket=self.target.bucket,
            cos_path=self.cos_path,
            session=session,
            slice_size=slice_size,
            earlier_session=self._earlier[0],
            earlier_sha1=self._earlier[1],
        )
        self.store.save(self._key, checkpoint.to_dict())

    def _drop_checkpoint(self) -> None:
        if self.store is not None:
            self.store.delete(self._key)

    # ------------------------------------------------------------------ slice upload
    def _sliced(self) -> tuple[str, _Outcome]:
        checkpoint = self._load_checkpoint()
        started = self._clock()
        parts_size = self._slice_size if self.dialect.slice_ops.hash_parts else None
        digest = hash_file(
            self._fd,
            self._identity,
            path=self.local_path,
            parts_slice_size=parts_size,
            chunk_size=self.config.hash_chunk_size,
            cancel=self.coord.stop,
        )
        self._hash_seconds = self._clock() - started
        session_hint = self._adopt_checkpoint(checkpoint, digest)
        self._save_checkpoint(digest, session_hint, checkpoint.slice_size if session_hint and checkpoint else None)
        try:
            # the generation's slice flow (protocol SliceOps, data) picks the strategy; no class checks
            flow = self.dialect.slice_ops.flow
            if flow == "offset":
                outcome = self._run_v1(digest, session_hint)
            elif flow == "finish":
                outcome = self._run_v2(self.dialect, digest)
            else:
                raise CosConfigError(f"slice flow {flow!r} ({self.dialect.api_version}) is not driven by this engine")
        except (CosFileChangedError, CosIntegrityError):
            self._drop_checkpoint()
            raise
        return digest.sha1, outcome

    def _send_slice(self, slc: Slice, session: str, sha: str | None) -> SliceAck:
        if self.coord.stop.is_set():
            self.coord.check_cancelled()
        data = self._buffers.get()  # this thread's buffer: free, the previous slice's call has returned
        data.load(self._fd, slc.length, slc.offset, path=self.local_path)
        request = self.dialect.prepare_slice_data(
            self.cos_path, session=session, offset=slc.offset, length=slc.length, sha=sha
        )
        path = self.cos_path
        dialect = self.dialect

        def process(status: int, body: bytes) -> SliceAck:
            ack = dialect.process_slice_data(status, body, path=path)
            if ack.offset != slc.offset:
                raise CosProtocolError(
                    f"answer for offset {ack.offset} to the slice at {slc.offset}", operation=request.op, path=path
                )
            if ack.session and ack.session != session:
                raise CosProtocolError("answer names another session", operation=request.op, path=path)
            return ack

        ack = self.requester.call(
            self.target,
            request,
            process,
            data=data,
            progress=self.coord.progress.add,
            stop=self.coord.stop,
            on_retry=self._retry_hook,
        )
        self.coord.record_sent(slc.length)
        return ack

    def _sender(self, session: str, sha: str | None) -> Callable[[Slice], SliceAck]:
        def send(slc: Slice) -> SliceAck:
            return self._send_slice(slc, session, sha)

        return send

    def _limit(self, session: SliceSession) -> int:
        return 1 if session.serial_upload else self.config.max_workers

    def _set_progress(self, stored: int) -> None:
        self.coord.progress.position(stored)

    def _refuse_or_replace(self, *, session: str | None, filesize: int | None, sha: str, digest: FileDigest) -> None:
        """An unfinished upload of other content that this upload did not open is at the path.

        One that declares a SHA-1 may be a live upload of another writer: never touched, a
        :class:`CosUploadConflictError`. One without a SHA-1 was made by a client that cannot be ours (we
        always send it) and could never be completed with our content: replaced when overwriting (returns),
        else named in the error with how to clear it.
        """
        name = f"session {session}" if session else "an open session"
        if not sha:
            if not self.insert_only:
                _log.warning(
                    "replacing the unfinished upload at %s (%s, %s bytes): it declares no SHA-1, so "
                    "another client made it and it cannot be completed with this file",
                    self.cos_path,
                    name,
                    filesize,
                )
                return
            raise CosUploadConflictError(
                f"an unfinished upload at {self.cos_path} ({name}, {filesize} bytes) declares no SHA-1, so "
                "another client made it and this upload cannot continue it; upload with overwrite=True to "
                "replace it, or delete the path (CosHook.delete, op=delete) to clear it",
                path=self.cos_path,
            )
        raise CosUploadConflictError(
            f"another upload of different content is in progress at {self.cos_path} ({name}, {filesize} "
            f"bytes, SHA-1 {sha}; this file: {self._identity.size} bytes, SHA-1 {digest.sha1}); it was left "
            "alone. Retry once it has finished, or delete the path (CosHook.delete, op=delete) if it was "
            "abandoned",
            path=self.cos_path,
        )

    def _restart_after_mismatch(self, error: CosIntegrityError) -> bool:
        """Whether the upload starts over after ``error`` at the completion of its session.

        -174 at completion while the file is unchanged: the SHA-1 of the bytes the server holds is not the
        file's, so bytes were altered on the way (JSON has no per-slice checksum to tell which slice). That
        session can never complete with this content, and left open a later try would continue it into the
        same -174: it is deleted (``op=delete`` of the path: the session, and any older object there that
        this upload was replacing) and the whole file is sent again, once. A second mismatch is raised.
        """
        if isinstance(error, CosFileChangedError) or error.code != SHA_MISMATCH or self._mismatch_restarts:
            return False
        self._check_unchanged()
        self._mismatch_restarts += 1
        _log.warning(
            "the server's SHA-1 of the bytes uploaded to %s is not the file's (%s): they were altered on the "
            "way; deleting that session and sending the file again",
            self.cos_path,
            error,
        )
        self._delete(self.cos_path, self.target)
        self._resumed = False
        return True

    # ---- v1
    def _v1_init(self, digest: FileDigest, session_hint: str | None) -> InstantUpload | SliceSession:
        def init(session: str | None) -> InstantUpload | SliceSession:
            request = self.dialect.prepare_slice_init(
                self.cos_path,
                filesize=self._identity.size,
                sha=digest.sha1,
                slice_size=self._slice_size,
                biz_attr=self.biz_attr,
                insert_only=self.insert_only,
                session=session,
            )
            result = self.requester.call(
                self.target,
                request,
                self._call_process(self.dialect.process_slice_init),
                stop=self.coord.stop,
                on_retry=self._retry_hook,
            )
            assert isinstance(result, (InstantUpload, SliceSession))
            return result

        self._v1_look(digest)
        if session_hint:
            try:
                return init(session_hint)
            except (CosSessionError, CosNotFoundError):
                _log.info("the earlier session is gone; starting a new one")
        return init(None)

    def _v1_look(self, digest: FileDigest) -> None:
        """v1's init replaces whatever session is open at the path, so look first (``stat``) and never
        init over an unfinished upload of other content that is not ours.

        Once a session of ours was lost, a complete object of other content at the path means another
        writer: it either completed meanwhile, or its unfinished upload is hidden behind that object (v1's
        ``stat`` shows the object) and replaced our session. A delete would have removed the object too.
        """
        info = self._stat(self.cos_path, self.target)
        if info is None or info.is_folder:
            return
        sha = _plain_sha(info.sha)
        if info.complete:
            if self._sessions_lost and sha != digest.sha1:
                raise CosUploadConflictError(
                    f"another upload of different content is in progress at {self.cos_path}: this upload's "
                    f"session was replaced (the path shows an object with SHA-1 {sha or 'unknown'}); this "
                    f"upload (SHA-1 {digest.sha1}) stopped and left it alone",
                    path=self.cos_path,
                )
            return
        if info.filesize == self._identity.size and sha == digest.sha1:
            return  # the same content: the server continues that session
        if sha and sha == self._earlier[1]:
            _log.info("replacing this upload's own unfinished session of earlier content at %s", self.cos_path)
            return
        self._refuse_or_replace(session=None, filesize=info.filesize, sha=sha, digest=digest)

    def _run_v1(self, digest: FileDigest, session_hint: str | None) -> _Outcome:
        size = self._identity.size
        for _round in range(self.config.max_resume_rounds):
            opened = self._v1_init(digest, session_hint)
            if isinstance(opened, InstantUpload):
                return _Outcome(opened.urls, instant=self.coord.slices_sent == 0 and session_hint is None)
            if session_hint and opened.session == session_hint and opened.offset > 0:
                self._resumed = True
            session_hint = opened.session
            self._save_checkpoint(digest, opened.session, opened.slice_size)
            plan = SlicePlan(size, opened.slice_size)
            todo = plan.from_offset(opened.offset)
            if not todo:  # the server holds every byte but did not complete: send the last slice again
                todo = [plan.slices()[-1]]
            self._set_progress(todo[0].offset)
            body = [s for s in todo if not s.final]
            finals = [s for s in todo if s.final]
            try:
                self.coord.run_slices(body, self._sender(opened.session, None), max_in_flight=self._limit(opened))
                urls: ObjectUrls | None = None
                try:
                    for slc in finals:
                        self._check_unchanged()
                        self.coord.check_cancelled()
                        urls = self._send_slice(slc, opened.session, None).urls
                finally:
                    self._buffers.release()  # this (calling) thread's buffer: the workers' died with them
            except CosSessionError as e:
                self._sessions_lost += 1
                _log.warning("slice session problem (%s); asking the server where to continue", e)
                continue
            except CosIntegrityError as e:
                if not self._restart_after_mismatch(e):
                    raise
                session_hint = None
                continue
            if urls is not None:
                return _Outcome(urls, instant=False)
            _log.info("final slice answered without URLs; re-initialising to find the missing offset")
        if self._sessions_lost:
            raise CosUploadConflictError(
                f"another upload of different content is in progress at {self.cos_path}: this upload's "
                f"session was replaced {self._sessions_lost} time(s) and it stopped",
                path=self.cos_path,
            )
        raise CosSessionError(
            f"upload did not complete after {self.config.max_resume_rounds} rounds", path=self.cos_path
        )

    # ---- v2
    def _v2_open(self, dialect: Dialect, digest: FileDigest) -> InstantUpload | SliceSession:
        parts = digest.parts
        request = dialect.prepare_slice_init(
            self.cos_path,
            filesize=self._identity.size,
            sha=digest.sha1,
            slice_size=digest.parts_slice_size or self._slice_size,
            uploadparts=parts,
            biz_attr=self.biz_attr,
            insert_only=self.insert_only,
        )
        try:
            result = self.requester.call(
                self.target,
                request,
                self._call_process(dialect.process_slice_init),
                stop=self.coord.stop,
                on_retry=self._retry_hook,
            )
            assert isinstance(result, (InstantUpload, SliceSession))
            return result
        except CosUnfinishedUploadError:
            pass
        listed = self.requester.call(
            self.target,
            dialect.prepare_slice_list(self.cos_path),
            self._call_process(dialect.process_slice_list),
            stop=self.coord.stop,
            on_retry=self._retry_hook,
        )
        assert isinstance(listed, (InstantUpload, SliceSession))
        if isinstance(listed, InstantUpload):  # completed meanwhile, by whom is unknown: init again
            raise CosSessionError("the unfinished upload at this path completed meanwhile", path=self.cos_path)
        sha = _plain_sha(listed.sha)
        if listed.filesize == self._identity.size and sha == digest.sha1:
            self._resumed = True
            return listed
        if listed.session in self._own_sessions:
            _log.warning(
                "deleting this upload's own unfinished session of earlier content at %s and starting over",
                self.cos_path,
            )
        else:
            self._refuse_or_replace(session=listed.session, filesize=listed.filesize, sha=sha, digest=digest)
        self._delete(self.cos_path, self.target)
        raise CosSessionError("unfinished upload of other content deleted", path=self.cos_path)

    def _run_v2(self, dialect: Dialect, digest: FileDigest) -> _Outcome:
        size = self._identity.size
        for _round in range(self.config.max_resume_rounds):
            try:
                opened = self._v2_open(dialect, digest)
            except (CosSessionError, CosNotFoundError):
                continue
            if isinstance(opened, InstantUpload):
                return _Outcome(opened.urls, instant=self.coord.slices_sent == 0 and not self._resumed)
            self._save_checkpoint(digest, opened.session, opened.slice_size)
            plan = SlicePlan(size, opened.slice_size)
            todo = plan.missing(opened.received)
            self._set_progress(plan.stored_bytes(opened.received))
            try:
                self.coord.run_slices(
                    todo, self._sender(opened.session, digest.sha1), max_in_flight=self._limit(opened)
                )
                self._check_unchanged()
                self.coord.check_cancelled()
                finish = dialect.prepare_slice_finish(
                    self.cos_path, session=opened.session, filesize=size, sha=digest.sha1
                )
                urls = self.requester.call(
                    self.target,
                    finish,
                    self._call_process(dialect.process_slice_finish),
                    stop=self.coord.stop,
                    on_retry=self._retry_hook,
                )
                assert isinstance(urls, ObjectUrls)
                return _Outcome(urls, instant=False)
            except CosSessionError as e:
                _log.warning("slice session problem (%s); asking the server what it holds", e)
                continue
            except CosIntegrityError as e:
                if not self._restart_after_mismatch(e):
                    raise
                continue
        raise CosSessionError(
            f"upload did not complete after {self.config.max_resume_rounds} rounds", path=self.cos_path
        )


def _plain_sha(sha: str | None) -> str:
    """A server's ``sha`` field as 40 lower-case hex digits (some answers append ``_<n>``), or ``""``."""
    return (sha or "").split("_")[0].lower()


def _urls_from_stat(info: StatInfo, target: CosTarget, cos_path: str) -> ObjectUrls:
    """The object's URLs when only a ``stat`` answer is at hand (same forms as an upload answer)."""
    return ObjectUrls(
        resource_path=f"/{target.appid}/{target.bucket}{cos_path}",
        access_url=info.access_url or "",
        source_url=info.source_url or "",
        url=target.url(cos_path),
    )


def with_bucket(target: CosTarget, bucket: str | None) -> CosTarget:
    """``target`` with another bucket (per-call override), validated.

    A custom domain is bound to the target's own bucket: another bucket is addressed by its virtual host
    (through the same endpoint), never through that domain, which would reach the bound bucket instead."""
    if not bucket or bucket == target.bucket:
        return target
    from airflow_provider_cos.protocol.paths import validate_bucket

    return replace(target, bucket=validate_bucket(bucket), custom_domain=None)
