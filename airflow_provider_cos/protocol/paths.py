"""COS paths and URLs (COS_JSON_API.md §1.2-§1.3) for both API generations.

A *file path* starts with ``/`` and never ends with ``/``; a *folder path* ends with ``/`` (the bucket
root is ``/``). Paths are UTF-8 and percent-encoded on the wire with every byte but the unreserved ones
and ``/`` escaped. Validation is strict (what the hook sends); decoding in the emulator is liberal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from airflow_provider_cos.protocol.errors import CosConfigError, CosPathError

ApiVersion = Literal["v1", "v2", "xml"]
#: ``xml`` is today's COS API (``<bucket>-<appid>.cos.<region>.myqcloud.com``); v1/v2 the JSON generations.
API_VERSIONS: tuple[ApiVersion, ...] = ("v1", "v2", "xml")

FORBIDDEN_CHARS = frozenset('?*:|\\<>"')
V1_HOST = "web.file.myqcloud.com"
REGION_ALIASES = {
    "sh": "sh",
    "shanghai": "sh",
    "gz": "gz",
    "guangzhou": "gz",
    "tj": "tj",
    "tianjin": "tj",
    "sgp": "sgp",
    "singapore": "sgp",
}
DEFAULT_REGION = "gz"
#: The XML API's region names for the JSON-era short codes (``gz`` -> ``ap-guangzhou``).
XML_REGIONS = {
    "gz": "ap-guangzhou",
    "sh": "ap-shanghai",
    "tj": "ap-beijing-1",
    "sgp": "ap-singapore",
    "bj": "ap-beijing",
    "cd": "ap-chengdu",
    "cq": "ap-chongqing",
    "hk": "ap-hongkong",
}
_BUCKET_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
_REGION_RE = re.compile(r"^[a-z0-9-]{1,40}$")
#: COS's region names: a two-letter area, a city, an optional qualifier (ap-guangzhou, na-siliconvalley,
#: ap-beijing-1, ap-shenzhen-fsi). Not a list: Tencent adds regions.
_XML_REGION_RE = re.compile(r"^[a-z]{2}-[a-z]+(?:-[a-z0-9]+)?$")


def _path_error(message: str, path: str) -> CosPathError:
    return CosPathError(message, code=-180, path=path)


def _check_segments(path: str, *, what: str) -> None:
    if not path.startswith("/"):
        raise _path_error(f"{what} must start with '/'", path)
    bad = sorted({c for c in path if c in FORBIDDEN_CHARS})
    if bad:
        raise _path_error(f"{what} contains forbidden character(s) {' '.join(bad)}", path)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise _path_error(f"{what} contains a control character", path)
    inner = path[1:-1] if path.endswith("/") else path[1:]
    if inner:
        for segment in inner.split("/"):
            if not segment.strip():
                raise _path_error(f"{what} has an empty segment (// or / /)", path)
            if segment in (".", ".."):
                raise _path_error(f"{what} has a '{segment}' segment", path)


def normalize_file_path(path: str) -> str:
    """Validate a file path; a missing leading ``/`` is added. Raises :class:`CosPathError`."""
    if not isinstance(path, str) or not path.strip("/").strip():
        raise _path_error("file path is empty", str(path))
    if not path.startswith("/"):
        path = "/" + path
    if path.endswith("/"):
        raise _path_error("file path must not end with '/' (that is a folder path)", path)
    _check_segments(path, what="file path")
    return path


def normalize_folder_path(path: str) -> str:
    """Validate a folder path; a missing leading or trailing ``/`` is added. ``/`` is the root."""
    if not isinstance(path, str):
        raise _path_error("folder path must be a string", str(path))
    if not path.startswith("/"):
        path = "/" + path
    if not path.endswith("/"):
        path += "/"
    _check_segments(path, what="folder path")
    return path


def parent_folders(file_path: str) -> list[str]:
    """Folders that must exist before ``file_path`` can be uploaded, outermost first, root excluded."""
    parts = normalize_file_path(file_path).strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) + "/" for i in range(len(parts))]


def encode_path(path: str) -> str:
    """Percent-encode UTF-8 bytes, keeping unreserved characters and ``/``."""
    return quote(path.encode("utf-8"), safe="/~")


def decode_path(encoded: str) -> str:
    """Liberal inverse of :func:`encode_path` (any equivalent encoding decodes to the same path)."""
    return unquote(encoded, encoding="utf-8", errors="strict")


def fileid(appid: str | int, bucket: str, path: str) -> str:
    """The ``f`` field of a one-time signature: ``/<appid>/<bucket><encoded path>``."""
    return f"/{appid}/{bucket}{encode_path(path)}"


def validate_appid(appid: str | int) -> str:
    text = str(appid).strip()
    if not text.isdigit():
        raise CosConfigError(f"app_id must be a decimal number, got {str(appid)!r}")
    return text


def validate_bucket(bucket: str) -> str:
    if not isinstance(bucket, str) or not _BUCKET_RE.match(bucket):
        raise CosConfigError(
            f"bucket name {bucket!r} is invalid: lower-case letters, digits and '-', 1-40 characters, "
            "without the '-<appid>' suffix"
        )
    return bucket


def validate_api_version(api_version: str) -> ApiVersion:
    if api_version == "v1":
        return "v1"
    if api_version == "v2":
        return "v2"
    if api_version == "xml":
        return "xml"
    raise CosConfigError(f"api_version must be 'v1', 'v2' or 'xml', got {api_version!r}")


def normalize_region(region: str | None) -> str:
    if not region:
        return DEFAULT_REGION
    value = region.strip().lower()
    if not _REGION_RE.match(value):
        raise CosConfigError(f"region {region!r} is invalid")
    return REGION_ALIASES.get(value, value)


def xml_region(region: str | None) -> str:
    """The XML API's region name (``ap-guangzhou``); JSON-era short codes and aliases are translated.
    Anything else that is not shaped like a COS region name is refused: it would be a host name that no
    DNS resolves (or, through a ``host`` override, a signature for a region the bucket is not in)."""
    name = XML_REGIONS.get(normalize_region(region), normalize_region(region))
    if not _XML_REGION_RE.match(name):
        raise CosConfigError(
            f"region {region!r} is not a COS region name such as ap-guangzhou, ap-shanghai or na-siliconvalley"
            f" (the short codes {', '.join(sorted(XML_REGIONS))} are translated)"
        )
    return name


def default_endpoint(api_version: ApiVersion, region: str | None = None, *, https: bool = False) -> str:
    """Tencent's production base URL for a generation (without ``/files/vN``).

    For ``xml`` it is the region's service endpoint ``https://cos.<region>.myqcloud.com``; requests go to
    the bucket's virtual host ``<bucket>-<appid>.cos.<region>.myqcloud.com`` under it
    (:func:`airflow_provider_cos.transfer.xmlcalls.xml_target`)."""
    scheme = "https" if https else "http"
    if api_version == "xml":
        return f"https://cos.{xml_region(region)}.myqcloud.com"
    if api_version == "v1":
        return f"{scheme}://{V1_HOST}"
    return f"{scheme}://{normalize_region(region)}.file.myqcloud.com"


def normalize_endpoint(endpoint: str) -> str:
    """Validate a configured endpoint base URL (``http(s)://host[:port][/prefix]``), without trailing ``/``."""
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise CosConfigError("endpoint (connection host) is empty")
    value = endpoint.strip()
    if "://" not in value:
        value = "http://" + value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise CosConfigError(f"endpoint {endpoint!r} is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise CosConfigError(f"endpoint {endpoint!r} must use http or https")
    if not parts.hostname or any(c.isspace() for c in value):
        raise CosConfigError(f"endpoint {endpoint!r} has no valid host name")
    if parts.query or parts.fragment:
        raise CosConfigError(f"endpoint {endpoint!r} must not carry a query or fragment")
    del port
    path = re.sub(r"/files/v[12]/?$", "", parts.path.rstrip("/"))
    return f"{parts.scheme}://{parts.netloc}{path}"


def api_base(endpoint: str, api_version: ApiVersion) -> str:
    """``<endpoint>/files/v1`` or ``<endpoint>/files/v2``."""
    return f"{normalize_endpoint(endpoint)}/files/{api_version}"


def resource_url(endpoint: str, api_version: ApiVersion, appid: str | int, bucket: str, path: str) -> str:
    """Full request URL of a path: ``<base>/<appid>/<bucket><encoded path>``."""
    return f"{api_base(endpoint, api_version)}/{appid}/{bucket}{encode_path(path)}"


@dataclass(frozen=True)
class ObjectUrls:
    """The four URLs COS returns for an uploaded object (COS_JSON_API.md §1.2)."""

    resource_path: str
    access_url: str
    source_url: str
    url: str
    preview_url: str | None = None


def download_url(endpoint: str, api_version: ApiVersion, appid: str | int, bucket: str, path: str) -> str:
    """Where a JSON-generation object is downloaded (GET with ``?sign=``, COS_JSON_API.md §1.2).

    On Tencent's API hosts (``<region>.file.myqcloud.com``, v1's ``web.file.myqcloud.com``) that is the
    object's ``source_url`` host ``<bucket>-<appid>.cos<region>.myqcloud.com``; any other endpoint (the
    emulator, a proxy) serves the download at the object's API URL.
    """
    base = normalize_endpoint(endpoint)
    parts = urlsplit(base)
    host = parts.hostname or ""
    match = re.fullmatch(r"([a-z0-9-]+)\.file\.myqcloud\.com", host)
    if match is None:
        return resource_url(base, api_version, appid, bucket, path)
    region = match.group(1)
    download_host = "cos" if region == "web" else f"cos{region}"
    return f"{parts.scheme}://{bucket}-{appid}.{download_host}.myqcloud.com{encode_path(path)}"


def object_urls(
    appid: str | int,
    bucket: str,
    path: str,
    *,
    api_version: ApiVersion,
    region: str | None = None,
    api_endpoint: str | None = None,
) -> ObjectUrls:
    """The URLs the service reports for ``path`` (used by the emulator and in docs/tests)."""
    encoded = encode_path(path)
    region_code = normalize_region(region)
    endpoint = api_endpoint or default_endpoint(api_version, region_code)
    download_host = "cos" if api_version == "v1" else f"cos{region_code}"
    return ObjectUrls(
        resource_path=f"/{appid}/{bucket}{path}",
        access_url=f"http://{bucket}-{appid}.file.myqcloud.com{encoded}",
        source_url=f"http://{bucket}-{appid}.{download_host}.myqcloud.com{encoded}",
        url=resource_url(endpoint, api_version, appid, bucket, path),
    )
