"""Transfer configuration (immutable) and its documented memory bound."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from airflow_provider_cos.protocol.errors import CosConfigError
from airflow_provider_cos.transfer.retry import RetryPolicy

KiB = 1024
MiB = 1024 * KiB
#: Room a slice buffer keeps around the slice for the multipart framing (see ``transfer.buffers``).
SLICE_FRAMING = 5 * KiB

#: Measured on the reference machine (2 cores, see BENCHMARKS.md): 4 in-flight slices saturate the
#: emulator on loopback; 8 gains nothing and costs memory. Against a remote server a higher value
#: may help to hide latency.
DEFAULT_MAX_WORKERS = 4

#: The slice size when none is configured, per API. v1/v2: a request, the server's answer wins (COS
#: answers 1 MiB). xml: the part size, chosen by the client (raised so that a file needs at most 10000
#: parts). 8 MiB parts, against 1 MiB, cut the client's CPU per byte by about half and the emulator's by
#: a quarter, and the requests (signatures, round trips) by 8 (BENCHMARKS.md, "xml"); peak memory grows
#: by max_workers x 7 MiB.
DEFAULT_SLICE_SIZE: Mapping[str, int] = {"v1": MiB, "v2": MiB, "xml": 8 * MiB}


@dataclass(frozen=True)
class TransferConfig:
    """Knobs of the transfer engine.

    Memory bound of one ``upload_file``, whatever the file size::

        peak ≈ max_workers × (slice_size + 5 KiB)  +  hash_chunk_size  +  ~1 MiB (JSON, headers, bookkeeping)

    ``slice_size`` ``None`` means the API's default (:data:`DEFAULT_SLICE_SIZE`, see :meth:`slice_size_for`).

    Each sending thread owns one reusable buffer: the slice is read into it (``preadv``) with 5 KiB of
    room around it, where the multipart prefix and suffix are written, and the transport streams a view
    of it, so an in-flight slice is held once. The buffers live as long as the sending threads (one
    phase of slices). The hash pass reuses one buffer of ``hash_chunk_size`` (freed before the slices
    start). Queued slices are ``(offset, length)`` descriptors and cost nothing. The server decides the
    real slice size (``slice_size`` is only a request), so the bound uses the server's value when it
    differs. Files below ``simple_threshold`` are sent with one ``op=upload`` and are held in memory
    once plus the encoded body: ``2 × simple_threshold``.

    ``connect_timeout``/``read_timeout`` are seconds (requests' ``(connect, read)`` tuple).
    ``verify``: after completion, ``stat`` the object and compare its size and SHA-1 with the file.
    ``signature_validity``: lifetime of each multi-effect signature; every request is signed afresh.

    Memory bound of one ``download_file`` (each in-flight part is read whole from the socket, which may
    briefly hold it twice while joining, then written with ``pwrite``)::

        peak ≈ max_workers × 2 × download_part_size  +  hash_chunk_size  +  ~1 MiB
    """

    simple_threshold: int = 20 * MiB
    slice_size: int | None = None
    max_workers: int = DEFAULT_MAX_WORKERS
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    verify: bool = True
    signature_validity: int = 600
    hash_chunk_size: int = 4 * MiB
    send_block_size: int = 256 * KiB
    max_resume_rounds: int = 5
    download_part_size: int = 4 * MiB

    def __post_init__(self) -> None:
        if self.simple_threshold < 0:
            raise CosConfigError("simple_threshold must be >= 0")
        if self.slice_size is not None and (self.slice_size <= 0 or self.slice_size % (64 * KiB)):
            raise CosConfigError("slice_size must be a positive multiple of 64 KiB")
        if not 1 <= self.max_workers <= 64:
            raise CosConfigError("max_workers must be within 1..64")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise CosConfigError("timeouts must be positive")
        if not 0 < self.signature_validity <= 90 * 24 * 3600:
            raise CosConfigError("signature_validity must be within 1 s..90 days")
        if not 64 * KiB <= self.hash_chunk_size <= 64 * MiB or self.hash_chunk_size % 64:
            raise CosConfigError("hash_chunk_size must be a multiple of 64 within 64 KiB..64 MiB")
        if self.send_block_size < 16 * KiB:
            raise CosConfigError("send_block_size must be >= 16 KiB")
        if self.download_part_size <= 0 or self.download_part_size % (64 * KiB):
            raise CosConfigError("download_part_size must be a positive multiple of 64 KiB")
        if self.max_resume_rounds < 1:
            raise CosConfigError("max_resume_rounds must be >= 1")

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)

    def download_memory_bound(self) -> int:
        """The documented peak (bytes) of one download."""
        return self.max_workers * 2 * self.download_part_size + self.hash_chunk_size + MiB

    def slice_size_for(self, api_version: str) -> int:
        """The configured slice size, else ``api_version``'s default."""
        return self.slice_size or DEFAULT_SLICE_SIZE[api_version]

    def memory_bound(self, slice_size: int | None = None, *, api_version: str = "v1") -> int:
        """The documented peak (bytes) for slices of ``slice_size`` (default: the configured one)."""
        size = slice_size or self.slice_size_for(api_version)
        return self.max_workers * (size + SLICE_FRAMING) + self.hash_chunk_size + MiB
