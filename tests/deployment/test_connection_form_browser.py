"""The Add Connection form of the real Airflow UI, driven by Playwright on Debian's chromium.

The ``cos`` type is offered under its hook name with its fields and widgets (SecretId, a password input
for SecretKey, the endpoint and its port, the extra fields as typed widgets, ``api_version`` as a
dropdown); two connections made in the form are saved (one with a wrong SecretKey) and the Test button
of the connection list gives the hook's answer for each. Screenshots are kept in ``$COS_TEST_ARTIFACTS``
(default: a temporary directory; the path is printed).

Playwright cannot download browsers here: the test needs ``/usr/bin/chromium`` (``.ci/run`` installs it
and sets ``COS_REQUIRE_BROWSER=1``, which turns a missing browser into a failure instead of a skip).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_cos.emulator import DEMO
from airflow_provider_cos.hooks.connection import EXTRA_FIELDS, HOOK_NAME, RELABELING
from tests.deployment.services import Deployment

CHROMIUM = Path(os.environ.get("COS_TEST_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("COS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing (apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium); set COS_REQUIRE_BROWSER=1 to fail")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def open_add_form(page: Any, dep: Deployment) -> Any:
    page.goto(f"{dep.api_url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    combo = dialog.get_by_role("combobox", name="Connection Type")
    combo.click()
    combo.fill("Tencent")
    options = page.get_by_role("option")
    assert options.all_inner_texts() == [HOOK_NAME]  # the hook name, not the raw type
    options.first.click()
    return dialog


def fill_form(page: Any, dialog: Any, dep: Deployment, conn_id: str, secret_key: str) -> None:
    endpoint = urlsplit(dep.emulator_url)
    dialog.get_by_label("Connection ID").fill(conn_id)
    open_section(dialog, "Standard Fields")  # one section open at a time
    dialog.get_by_label(RELABELING["host"]).fill(f"http://{endpoint.hostname}")
    dialog.get_by_label(RELABELING["login"]).fill(DEMO.secret_id)
    dialog.get_by_label(RELABELING["password"]).fill(secret_key)
    # Airflow 3.3.2's Test button works only for connections stored with a port (apache/airflow PR 73298).
    dialog.get_by_label(RELABELING["port"]).fill(str(endpoint.port))
    open_section(dialog, "Extra Fields")
    dialog.locator("input[name=element_app_id]").fill(DEMO.appid)
    dialog.locator("input[name=element_bucket]").fill(DEMO.bucket)
    choose_api_version(page, dialog, "v1")


def open_section(dialog: Any, name: str) -> None:
    button = dialog.get_by_role("button", name=name, exact=True)
    if button.get_attribute("aria-expanded") != "true":
        button.click()


def api_version_dropdown(dialog: Any) -> Any:
    return dialog.locator("#element_api_version").get_by_role("combobox")


def choose_api_version(page: Any, dialog: Any, value: str) -> None:
    api_version_dropdown(dialog).click()
    page.get_by_role("option", name=value, exact=True).click()


def press_test_button(page: Any, dep: Deployment, conn_id: str) -> tuple[dict[str, Any], str]:
    """Click the Test icon of ``conn_id``'s row: the API's answer and the toast the user sees."""
    page.goto(f"{dep.api_url}/connections")  # a fresh list: no tooltip of an earlier click over the row
    row = page.get_by_role("row").filter(has_text=conn_id)
    with page.expect_response(lambda r: r.url.endswith("/api/v2/connections/test")) as response:
        row.get_by_role("button", name="Test Connection").click()
    answer = response.value
    if answer.status != 200:
        body: dict[str, Any] = {"http_status": answer.status, "body": answer.text()}
        toast = page.get_by_role("status").filter(has_text="Test Connection Failed").last
    else:
        body = answer.json()
        toast = page.get_by_role("status").filter(has_text=body["message"]).last
    toast.wait_for()
    return body, str(toast.inner_text())


def test_add_connection_form_and_test_button(deployment: Deployment, browser: Any, artifacts_dir: Path) -> None:
    dep = deployment
    page = browser.new_page(viewport={"width": 1400, "height": 1700})
    try:
        dialog = open_add_form(page, dep)

        # Standard fields, relabelled; the SecretKey is a password input, the port a number.
        open_section(dialog, "Standard Fields")
        assert dialog.get_by_label(RELABELING["login"]).get_attribute("type") == "text"
        assert dialog.get_by_label(RELABELING["password"]).get_attribute("type") == "password"
        assert dialog.get_by_label(RELABELING["port"]).get_attribute("type") == "number"
        assert dialog.get_by_label(RELABELING["host"]).is_visible()
        assert dialog.locator("input[name=schema]").count() == 0  # hidden

        # Extra fields as typed widgets: text inputs, number inputs, the api_version dropdown.
        open_section(dialog, "Extra Fields")
        labels = " ".join(dialog.locator("label").all_inner_texts())
        for f in EXTRA_FIELDS:
            assert f.label in labels, f.label
            if f.kind == "string":
                assert dialog.locator(f"input[name=element_{f.name}]").is_visible(), f.name
        numeric = [f for f in EXTRA_FIELDS if f.kind in ("integer", "number")]
        assert dialog.locator("[data-scope=number-input][role=spinbutton]").count() == len(numeric)
        api_version_dropdown(dialog).click()
        assert page.get_by_role("option").all_inner_texts() == ["v1", "v2", "xml"]
        page.get_by_role("option", name="v2", exact=True).click()
        assert dialog.locator("input[name=element_api_version]").input_value() == "v2"

        fill_form(page, dialog, dep, "cos_ui_ok", DEMO.secret_key)
        form_shot = artifacts_dir / "cos-add-connection-form.png"
        page.screenshot(path=str(form_shot), full_page=True)
        print(f"screenshot: {form_shot}")
        dialog.get_by_role("button", name="Save").click()
        dialog.wait_for(state="hidden")

        saved = dep.api("GET", "/connections/cos_ui_ok")
        assert saved["conn_type"] == "cos" and saved["login"] == DEMO.secret_id
        assert saved["host"] == "http://127.0.0.1" and saved["port"] == urlsplit(dep.emulator_url).port
        extra = json.loads(saved["extra"])
        assert extra["app_id"] == DEMO.appid and extra["bucket"] == DEMO.bucket and extra["api_version"] == "v1"

        dialog = open_add_form(page, dep)
        fill_form(page, dialog, dep, "cos_ui_wrong_key", "not-the-secret-key")
        dialog.get_by_role("button", name="Save").click()
        dialog.wait_for(state="hidden")

        answer, toast = press_test_button(page, dep, "cos_ui_ok")
        assert answer == {"status": True, "message": answer.get("message")}, answer
        assert answer["message"].startswith(f"Connected to {dep.emulator_url} (v1)"), answer
        assert "Successful" in toast and answer["message"] in toast

        answer, toast = press_test_button(page, dep, "cos_ui_wrong_key")
        assert answer.get("status") is False, answer
        assert "Authentication failed" in answer["message"], answer
        assert "not-the-secret-key" not in answer["message"]
        assert "Failed" in toast and answer["message"] in toast

        list_shot = artifacts_dir / "cos-test-button-wrong-key.png"
        page.screenshot(path=str(list_shot))
        print(f"screenshot: {list_shot}")

        # Airflow 3.3.2's own limitation (apache/airflow PR 73298), documented in README and docs/airflow.md:
        # a connection stored without a port is refused before the hook runs. When this starts to pass
        # through, Airflow has fixed it: update the docs' "Test button" section.
        dep.create_cos_connection("cos_api_no_port")
        answer, toast = press_test_button(page, dep, "cos_api_no_port")
        assert answer["http_status"] == 400 and "Bad Request" in toast, (answer, toast)
    finally:
        page.close()
