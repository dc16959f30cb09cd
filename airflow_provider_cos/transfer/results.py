"""The typed result of an upload."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class UploadResult:
    """What ``CosClient.upload_file`` returns.

    ``resource_path``/``access_url``/``source_url``/``url`` are the server's URLs of the object; ``size``
    and ``sha1`` describe the local file (confirmed by ``stat`` when ``TransferConfig.verify``);
    ``instant`` = the server already had the content (秒传), nothing was sent. ``bytes_sent`` counts
    payload bytes of successful requests, ``slices_sent`` acknowledged slices (0 for a simple upload),
    ``elapsed`` seconds including the hash pass, ``resumed`` = an earlier session was continued.

    ``xml`` uploads (no SHA-1 in that API; ``sha1`` is empty) add ``etag`` (the object's ETag as COS
    sent it) and ``crc64`` (the object's CRC-64/ECMA as an unsigned decimal string, as in
    ``x-cos-hash-crc64ecma``, compared with COS's); ``method`` is ``"simple"`` (PutObject) or
    ``"multipart"``, and ``slices_sent`` counts parts.
    """

    resource_path: str
    access_url: str
    source_url: str
    url: str
    size: int
    sha1: str
    instant: bool
    bytes_sent: int
    slices_sent: int
    elapsed: float
    resumed: bool = False
    method: str = "slice"  # "simple" | "slice" | "instant"
    hash_seconds: float = 0.0
    etag: str = ""
    crc64: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (for XCom)."""
        return asdict(self)
