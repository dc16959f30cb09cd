"""Operator extra link: the uploaded object's URL on the endpoint it was uploaded to."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseOperatorLink

from airflow_provider_cos.protocol.paths import resource_url

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

    from airflow_provider_cos.hooks.connection import CosConnectionConfig

TENCENT_DOMAIN = "myqcloud.com"


def object_link_url(config: CosConnectionConfig, bucket: str, cos_path: str, access_url: str) -> str:
    """Where the "COS object" button goes for ``cos_path`` uploaded through ``config``.

    On Tencent's endpoint (a host under ``myqcloud.com``): the ``access_url`` the service returned, its
    download domain. Anywhere else (the emulator, a proxy, a private deployment), where that domain
    does not hold the object: the object's URL on the configured endpoint,
    ``<endpoint>/files/vN/<appid>/<bucket><path>`` (``xml``: ``<endpoint>/<key>``, the emulator's default
    bucket; in production ``access_url`` is the bucket's virtual host ``<bucket>-<appid>.cos.<region>...``).
    An ``xml`` connection with a ``custom_domain``: ``https://<custom_domain>/<key>`` for its bucket, wherever
    the host field sends the requests (the domain is the object's public name; the host only a TCP route).
    """
    if config.api_version == "xml" and config.custom_domain and bucket == config.bucket:
        return f"https://{config.custom_domain}/{quote(cos_path.lstrip('/'), safe='/-_.~')}"
    host = (urlsplit(config.endpoint).hostname or "").lower()
    if access_url and (host == TENCENT_DOMAIN or host.endswith("." + TENCENT_DOMAIN)):
        return access_url
    if config.api_version == "xml":
        return f"{config.endpoint}/{quote(cos_path.lstrip('/'), safe='/-_.~')}"
    return resource_url(config.endpoint, config.api_version, config.appid, bucket, cos_path)


class CosObjectLink(BaseOperatorLink):
    """ "COS object" button: the uploaded object on the connection's endpoint (see :func:`object_link_url`).

    Airflow 3 calls :meth:`get_link` when the task finishes, on the operator that ran, and stores the
    answer in XCom under :attr:`xcom_key`, where the UI reads it. The operator keeps the URL of its
    upload in ``object_url``; for an operator that did not run here (older UIs) the URL comes from the
    task's ``access_url``/``url`` XComs.
    """

    name = "COS object"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        url = getattr(operator, "object_url", None)
        if url or getattr(operator, "executed", False):
            return str(url or "")  # the operator that ran: no XCom lookup (none exists after a failure)
        from airflow.sdk.execution_time.xcom import XCom

        for key in ("access_url", "url"):
            value = XCom.get_value(ti_key=ti_key, key=key)
            if value:
                return str(value)
        return ""
