"""Operator extra link: the uploaded object's URL, stored in XCom by the operator at run time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class CosObjectLink(BaseOperatorLink):
    """"COS object" button: ``access_url`` of the object (``url`` when the server gave no access_url).

    The operator pushes the link under :attr:`xcom_key`; Airflow 3's API server reads that XCom directly
    (serialized operators keep only the link's name and key).
    """

    name = "COS object"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        return str(value) if value else ""

    @classmethod
    def persist(cls, context: Any, url: str | None) -> None:
        if url:
            context["ti"].xcom_push(key=cls().xcom_key, value=url)
