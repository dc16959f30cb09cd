"""A small XML API client for the emulator tests, built on the protocol layer's sans-I/O pairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests

from airflow_provider_cos.emulator import DEMO, BucketConfig
from airflow_provider_cos.protocol.xmloperations import XML, XmlRequest, XmlTarget, encode_xml_request
from airflow_provider_cos.protocol.xmlsigning import XmlCredentials, XmlSigner

REGION = "ap-guangzhou"


@dataclass
class XmlClient:
    base_url: str
    bucket: BucketConfig = DEMO
    signer: XmlSigner | None = None
    http: requests.Session = field(default_factory=requests.Session)
    #: sent as ``Host`` (and signed) instead of the bucket's virtual host
    custom_domain: str | None = None

    def __post_init__(self) -> None:
        self.target = XmlTarget(
            f"{self.bucket.bucket}-{self.bucket.appid}",
            REGION,
            endpoint=self.base_url,
            scheme="http",
            custom_domain=self.custom_domain,
        )
        if self.signer is None:
            self.signer = XmlSigner(XmlCredentials(self.bucket.secret_id, self.bucket.secret_key))

    def send(
        self, req: XmlRequest, data: bytes | None = None, *, headers: dict[str, str] | None = None
    ) -> requests.Response:
        assert self.signer is not None
        http = encode_xml_request(self.target, req, self.signer, extra_headers=headers)
        body = data if data is not None else http.body
        return self.http.request(http.method, http.url, headers=http.headers, data=body, timeout=30)

    def call(self, name: str, *args: Any, data: bytes | None = None, **kw: Any) -> Any:
        """``XML.prepare_<name>`` -> send -> ``XML.process_<name>`` (typed result or typed error)."""
        process_kw = {k: kw.pop(k) for k in ("crc64",) if k in kw}
        req = getattr(XML, f"prepare_{name}")(*args, **kw)
        resp = self.send(req, data)
        extra: dict[str, Any] = {}
        if name == "get_object" and "start" in kw:
            extra["start"] = kw["start"]
        if name == "upload_part":
            extra["part_number"] = kw["part_number"]
        if req.key is not None:
            extra["key"] = req.key
        return getattr(XML, f"process_{name}")(
            resp.status_code, list(resp.headers.items()), resp.content, **extra, **process_kw
        )
