"""Emulator configuration: bucket credentials, the documented demo credentials and runtime settings."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from airflow_provider_cos.emulator.storage import DEFAULT_SESSION_TTL
from airflow_provider_cos.protocol.paths import validate_appid, validate_bucket


@dataclass(frozen=True)
class BucketConfig:
    """One bucket the emulator serves and the SecretId/SecretKey pair allowed to sign for it.

    ``repr`` never shows the key.
    """

    appid: str
    bucket: str
    secret_id: str
    secret_key: str = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "appid", validate_appid(self.appid))
        validate_bucket(self.bucket)
        if not self.secret_id or not self.secret_key:
            raise ValueError("secret_id and secret_key must not be empty")


#: Documented demo credentials (NOT secrets): what ``python -m airflow_provider_cos.emulator`` uses with
#: no flags, what the demo DAGs and the test fixtures use.
DEMO = BucketConfig(
    appid="1250000000",
    bucket="examplebucket",
    secret_id="AKIDcosEmulatorDemoSecretIdNotReal00",
    secret_key="cos-emulator-demo-secret-key-not-real",
)

#: Range of client-requested slice sizes the emulator accepts as is (otherwise it answers 1 MiB).
MIN_SLICE = 64 * 1024
MAX_SLICE = 20 * 1024 * 1024
DEFAULT_SLICE = 1024 * 1024


_REGION = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?$")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_BUCKET_APPID = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]+$")


def validate_region(text: str) -> str:
    """A region name as the SDK accepts it (``ap-guangzhou``, ``gz``). Raises ``ValueError``."""
    if not _REGION.match(text):
        raise ValueError(f"region must look like ap-guangzhou, not {text!r}")
    return text


def validate_session_ttl(value: Any) -> float:
    """A session TTL in seconds: a finite number > 0. Raises ``ValueError`` naming the setting."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"session_ttl must be a positive number of seconds, not {value!r}")
    return value


def validate_custom_domain(domain: Any, bucket: Any) -> tuple[str, str]:
    """One custom-domain binding: ``(host name, '<bucket>-<appid>')``, the host name lowercased.

    A custom domain is a host name (``files.example.com``): no scheme, no port, no path; the bucket is
    the XML API's full name. Raises ``ValueError`` naming what is wrong."""
    name = domain.strip().lower() if isinstance(domain, str) else domain
    if not isinstance(name, str) or len(name) > 253 or not _DOMAIN.match(name):
        raise ValueError(
            f"custom domain must be a host name such as files.example.com (no scheme, port or path), not {domain!r}"
        )
    if not isinstance(bucket, str) or not _BUCKET_APPID.match(bucket.strip()):
        raise ValueError(
            f"custom domain {name}: the bucket must be '<bucket>-<appid>' "
            f"such as examplebucket-1250000000, not {bucket!r}"
        )
    return name, bucket.strip()


def validate_custom_domains(value: Any) -> dict[str, str]:
    """``{host name: '<bucket>-<appid>'}`` (see :func:`validate_custom_domain`). Raises ``ValueError``."""
    if not isinstance(value, Mapping):
        raise ValueError(f"custom_domains must map host names to '<bucket>-<appid>', not {value!r}")
    return dict(validate_custom_domain(domain, bucket) for domain, bucket in value.items())


def check_bound_buckets(custom_domains: Mapping[str, str], served_buckets: Iterable[str]) -> None:
    """Every custom domain is bound to one of ``served_buckets`` (``<bucket>-<appid>``). Raises ``ValueError``
    naming the domain."""
    served = sorted(served_buckets)
    for domain, bucket in custom_domains.items():
        if bucket not in served:
            raise ValueError(
                f"custom domain {domain} is bound to {bucket}, which this emulator does not serve "
                f"(it serves {', '.join(served)})"
            )


@dataclass
class EmulatorSettings:
    """Behaviour switches, changeable while the server runs (attribute writes are atomic in CPython).

    * ``serial_upload``: answer ``serial_upload=1`` in v2 init (and v1 init) answers.
    * ``slice_size``: force the slice size the server answers; ``None`` = accept the client's size when it
      is within 64 KiB..20 MiB (and, for v2, a multiple of 64), else answer 1 MiB.
    * ``delete_requires_once``: delete/update need a one-time signature (the documented rule).
    * ``check_uploadparts``: verify v2 ``uploadparts`` at finish.
    * ``region``: region used in the returned ``source_url`` and answered as ``x-cos-bucket-region``
      (JSON names such as ``gz`` and XML names such as ``ap-guangzhou`` are both accepted).
    * ``xml_region``: the region of the XML API's host names (any region is accepted in a Host header;
      this one is shown in the startup help and answered as ``x-cos-bucket-region``).
    * ``min_part_size``: the smallest non-last part CompleteMultipartUpload accepts (``EntityTooSmall``).
    * ``session_ttl``: seconds an unfinished upload may stay idle (no slice started or received) before it
      is discarded with its data (default one day).
    * ``custom_domains``: ``{host name: '<bucket>-<appid>'}``, the XML API's custom domains: a request whose
      ``Host`` is one of them goes to that bucket (see ``XmlOperations.route_xml``). Replaced as a whole.
    """

    serial_upload: bool = False
    slice_size: int | None = None
    delete_requires_once: bool = True
    check_uploadparts: bool = True
    region: str = "gz"
    session_ttl: float = DEFAULT_SESSION_TTL
    min_part_size: int = 1024 * 1024
    xml_region: str = "ap-guangzhou"
    custom_domains: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def update(self, values: dict[str, Any]) -> None:
        """Apply a partial update (from ``POST /_emulator/settings``). Raises ``ValueError`` on bad input."""
        known = {f.name for f in fields(self) if not f.name.startswith("_")}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        with self._lock:
            for key, value in values.items():
                if key == "min_part_size":
                    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                        raise ValueError("min_part_size must be a non-negative integer")
                elif key == "slice_size":
                    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                        raise ValueError("slice_size must be a positive integer or null")
                elif key == "session_ttl":
                    value = validate_session_ttl(value)
                elif key == "custom_domains":
                    value = validate_custom_domains(value)
                elif key in ("region", "xml_region"):
                    if not isinstance(value, str) or not _REGION.match(value):
                        raise ValueError(f"{key} must be a region name such as ap-guangzhou, not {value!r}")
                elif not isinstance(value, bool):
                    raise ValueError(f"{key} must be a boolean")
                setattr(self, key, value)

    def answer_slice_size(self, requested: int | None, *, api_version: str) -> int:
        """The slice size the server tells the client to use."""
        forced = self.slice_size
        if forced:
            return forced
        if requested is None or not MIN_SLICE <= requested <= MAX_SLICE:
            return DEFAULT_SLICE
        if api_version == "v2" and requested % 64:
            return DEFAULT_SLICE
        return requested
