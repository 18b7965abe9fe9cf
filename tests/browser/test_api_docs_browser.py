"""The API's documentation pages in a real browser: Swagger UI and ReDoc from vendored files,
under the Content-Security-Policy, listing every operation of the schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_swagger_ui_and_redoc_render_the_schema_with_no_script_refused(
    live_server: Any, chromium: Any, artifacts: Path
) -> None:
    User.objects.create_user("dora", password="dora-password-1")
    page = chromium.new_page(viewport={"width": 1300, "height": 900})
    refused: list[str] = []
    outside: list[str] = []
    page.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    # ReDoc asks for its logo from its CDN; the CSP refuses it, so nothing leaves the browser.
    page.on(
        "requestfinished",
        lambda r: (
            outside.append(r.url)
            if not r.url.startswith((live_server.url, "data:", "blob:"))
            else None
        ),
    )
    page.goto(f"{live_server.url}/api/v1/docs/")
    assert "/accounts/login/" in page.url  # signed-in users only
    page.fill("#id_username", "dora")
    page.fill("#id_password", "dora-password-1")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=/api/v1/exports/")
    for path in ("/api/v1/agreement/", "/api/v1/tokens/"):
        assert page.locator(f"text={path}").count() >= 1
    page.screenshot(path=str(artifacts / "api-swagger.png"), full_page=False)
    page.goto(f"{live_server.url}/api/v1/redoc/")
    page.wait_for_selector("text=/api/v1/exports/", state="attached")
    page.screenshot(path=str(artifacts / "api-redoc.png"), full_page=False)
    assert [text for text in refused if "script" in text] == []
    assert outside == []  # nothing from a CDN or a font service
