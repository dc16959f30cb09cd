"""Operator extra link: the uploaded object's URL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class CosObjectLink(BaseOperatorLink):
    """"COS object" button: the object's ``access_url`` (``url`` when the server gave no access_url).

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
