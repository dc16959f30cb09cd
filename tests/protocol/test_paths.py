from __future__ import annotations

import pytest

from airflow_provider_cos.protocol import paths
from airflow_provider_cos.protocol.errors import CosConfigError, CosPathError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("a.txt", "/a.txt"), ("/dir/sub/name.ext", "/dir/sub/name.ext"), ("/测试/文件.bin", "/测试/文件.bin")],
)
def test_file_paths(raw: str, expected: str) -> None:
    assert paths.normalize_file_path(raw) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("/dir/", "must not end with '/'"),
        ("", "empty"),
        ("/", "empty"),
        ("/a?b", "forbidden character(s) ?"),
        ("/a*b", "*"),
        ("/a:b", ":"),
        ("/a|b", "|"),
        ("/a\\b", "\\"),
        ("/a<b>", "< >"),
        ('/a"b', '"'),
        ("/a//b", "empty segment"),
        ("/a/ /b", "empty segment"),
        ("/a/../b", "'..' segment"),
        ("/a\x00b", "control character"),
    ],
)
def test_bad_file_paths_name_the_fault(raw: str, fragment: str) -> None:
    with pytest.raises(CosPathError) as err:
        paths.normalize_file_path(raw)
    assert fragment in str(err.value)
    assert err.value.code == -180
    assert not err.value.retryable


def test_folder_paths() -> None:
    assert paths.normalize_folder_path("/") == "/"
    assert paths.normalize_folder_path("a/b") == "/a/b/"
    with pytest.raises(CosPathError):
        paths.normalize_folder_path("/a//")


def test_parent_folders() -> None:
    assert paths.parent_folders("/a/b/c.txt") == ["/a/", "/a/b/"]
    assert paths.parent_folders("/c.txt") == []


def test_encode_decode_round_trip() -> None:
    path = "/dir 1/测试 file~v2.txt"
    enc = paths.encode_path(path)
    assert enc == "/dir%201/%E6%B5%8B%E8%AF%95%20file~v2.txt"
    assert paths.decode_path(enc) == path
    assert paths.decode_path("/dir%201/%E6%B5%8B%E8%AF%95%20file%7Ev2.txt") == path  # Java style ~


def test_urls_for_both_generations() -> None:
    assert paths.default_endpoint("v1") == "http://web.file.myqcloud.com"
    assert paths.default_endpoint("v2", "shanghai") == "http://sh.file.myqcloud.com"
    assert paths.default_endpoint("v2", "ap-beijing") == "http://ap-beijing.file.myqcloud.com"
    assert paths.default_endpoint("v2", None, https=True) == "https://gz.file.myqcloud.com"
    assert (
        paths.resource_url("http://127.0.0.1:8089/", "v2", "1250000000", "bkt", "/a b/c.txt")
        == "http://127.0.0.1:8089/files/v2/1250000000/bkt/a%20b/c.txt"
    )
    assert paths.api_base("http://host/files/v1", "v1") == "http://host/files/v1"
    assert paths.normalize_endpoint("127.0.0.1:9000") == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("endpoint", "fragment"),
    [
        ("", "empty"),
        ("ftp://x", "http or https"),
        ("http://", "host"),
        ("http://a b", "host"),
        ("http://x:notaport", "not a valid URL"),
        ("http://x/?q=1", "query"),
    ],
)
def test_bad_endpoints(endpoint: str, fragment: str) -> None:
    with pytest.raises(CosConfigError, match=fragment):
        paths.normalize_endpoint(endpoint)


def test_config_validators() -> None:
    assert paths.validate_appid(" 1250000000 ") == "1250000000"
    with pytest.raises(CosConfigError, match="app_id"):
        paths.validate_appid("12a")
    with pytest.raises(CosConfigError, match="bucket"):
        paths.validate_bucket("Bad_Bucket")
    with pytest.raises(CosConfigError, match="api_version"):
        paths.validate_api_version("v3")
    assert paths.normalize_region("Guangzhou") == "gz"


def test_object_urls() -> None:
    urls = paths.object_urls("1250000000", "bkt", "/d/x y.bin", api_version="v2", region="sh")
    assert urls.resource_path == "/1250000000/bkt/d/x y.bin"
    assert urls.access_url == "http://bkt-1250000000.file.myqcloud.com/d/x%20y.bin"
    assert urls.source_url == "http://bkt-1250000000.cossh.myqcloud.com/d/x%20y.bin"
    assert urls.url == "http://sh.file.myqcloud.com/files/v2/1250000000/bkt/d/x%20y.bin"
