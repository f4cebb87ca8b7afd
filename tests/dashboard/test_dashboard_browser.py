"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by playwright): sign in,
find a request just made, filter, open it, record feedback, create a token and use it, create a
gateway, see a new row arrive live, and no request to any host but the gateway's. Screenshots of
each page at 1400 and 390 px wide go to `AIGW_TEST_ARTEFACTS` (default: the test's tmp dir)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, GatewayServer
from tests.support.helpers import ACCT, Api, api_client, openai_step

playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = (
    os.environ.get("AIGW_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium executable (apt-get install chromium)")


@pytest.fixture
def api(server: GatewayServer) -> Iterator[Api]:
    with api_client(server) as client:
        yield client


@pytest.fixture
def page(server: GatewayServer) -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.foreign_hosts = []  # type: ignore[attr-defined]
        page.console_errors = []  # type: ignore[attr-defined]
        host = httpx.URL(server.url).netloc.decode()

        def watch(request: Any) -> None:
            if httpx.URL(request.url).netloc.decode() != host and not request.url.startswith("data:"):
                page.foreign_hosts.append(request.url)  # type: ignore[attr-defined]

        page.on("request", watch)
        page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))  # type: ignore[attr-defined]
        try:
            yield page
        finally:
            browser.close()


def until(page: Any, check: Any, timeout_ms: int = 5000) -> None:
    """Poll from Python: the page's CSP (rightly) forbids the eval that `wait_for_function` needs."""
    for _ in range(timeout_ms // 50):
        if check():
            return
        page.wait_for_timeout(50)
    raise AssertionError("condition not met in time")


def rows(page: Any) -> int:
    return int(page.locator("tbody tr").count())


def shots(page: Any, name: str, folder: Path) -> None:
    for width in (1400, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(200)
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
        box = page.locator("html")
        scroll = box.evaluate("e => e.scrollWidth - e.clientWidth")
        assert scroll <= 1, f"{name} scrolls horizontally at {width} px"
    page.set_viewport_size({"width": 1400, "height": 900})


def sign_in(page: Any, base: str, token: str = ADMIN_TOKEN) -> None:
    page.goto(f"{base}/")
    page.get_by_label("Account").fill(ACCT)
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").wait_for()


def test_dashboard_end_to_end(page: Any, api: Api, server: GatewayServer, tmp_path: Path) -> None:
    folder = Path(os.environ.get("AIGW_TEST_ARTEFACTS") or tmp_path) / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    gateway = api.new_gateway()
    made = api.universal(gateway, openai_step(), headers={"cf-aig-metadata": '{"team": "search"}'})
    api.universal(gateway, openai_step({"x-fake-status": "500"}))
    log_id = made.headers["cf-aig-log-id"]
    base = server.url

    page.goto(f"{base}/")
    page.get_by_label("Token").fill("wrong-token")
    page.get_by_label("Account").fill(ACCT)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").wait_for()
    shots(page, "sign-in", folder)
    sign_in(page, base)
    for name in ("Overview", "Logs", "Gateways", "Tokens", "Provider keys"):
        assert page.get_by_role("navigation").get_by_role("link", name=name).count() == 1

    # Overview: the charts, named by metric.
    page.goto(f"{base}/dashboard/#/overview?gateway={gateway}&range=24h")
    for metric in ("Requests", "Errors", "Tokens", "Cost", "Latency"):
        page.get_by_role("img", name=re.compile(metric)).first.wait_for()
    # Axis ticks are drawn on a canvas, so the formatter the cost axis uses is checked directly:
    # sub-cent steps keep their digits instead of all rounding to 0.
    ticks = page.evaluate("() => window.aigw.tickLabels([0, 0.000001, 0.000002], '$')")
    assert ticks == ["$0.000000", "$0.000001", "$0.000002"]
    assert page.evaluate("() => window.aigw.tickLabels([0, 50, 100])") == ["0", "50", "100"]
    shots(page, "overview", folder)

    # Logs: the request just made, filters applied on change, then its detail page.
    page.goto(f"{base}/dashboard/#/logs?gateway={gateway}")
    table = page.get_by_role("table")
    for header in ("Model", "Status", "Cost"):
        assert table.get_by_role("columnheader", name=header).count() == 1
    page.get_by_role("cell", name="gpt-4o-mini").first.wait_for()
    assert table.locator("tbody tr").count() == 2
    page.get_by_label("Success").select_option("true")
    until(page, lambda: rows(page) == 1)
    page.get_by_label("Metadata (key=value)").fill("team=search")
    page.get_by_label("Metadata (key=value)").press("Enter")
    until(page, lambda: "meta=team" in page.url)
    until(page, lambda: rows(page) == 1)
    page.get_by_label("Model").fill("no-such-model")
    page.get_by_label("Model").press("Enter")
    until(page, lambda: rows(page) == 0)
    page.goto(f"{base}/dashboard/#/logs?gateway={gateway}")
    page.get_by_role("cell", name="gpt-4o-mini").first.wait_for()
    shots(page, "logs", folder)
    page.get_by_role("row").filter(has=page.get_by_role("cell", name="200")).get_by_role("link").first.click()
    until(page, lambda: log_id in page.url)
    page.get_by_text("say hello please").first.wait_for()
    page.get_by_role("heading", name="DLP findings").wait_for()  # its own section (none here)
    page.get_by_role("button", name="Thumbs up").click()
    page.get_by_role("status").wait_for()
    shots(page, "log-detail", folder)
    shown = api.http.get(
        f"/client/v4/accounts/{ACCT}/ai-gateway/gateways/{gateway}/logs/{log_id}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ).json()["result"]
    assert shown["feedback"] == 1
    # A reload stays signed in, on the same page.
    page.reload()
    page.get_by_role("button", name="Thumbs up").wait_for()

    # Live: a row made after the page opened appears without a reload.
    page.goto(f"{base}/dashboard/#/logs?gateway={gateway}")
    page.get_by_role("cell", name="gpt-4o-mini").first.wait_for()
    page.get_by_role("switch", name="Live").check()
    until(page, lambda: "live=1" in page.url)
    page.wait_for_timeout(300)
    newer = api.universal(gateway, openai_step(model="gpt-4o"))
    assert newer.status_code == 200
    page.get_by_role("cell", name="gpt-4o", exact=True).wait_for(timeout=4000)

    # Gateways: create one.
    page.goto(f"{base}/dashboard/#/gateways")
    page.get_by_label("Gateway ID").fill("made-in-browser")
    page.get_by_label("DLP (JSON)").first.fill('{"enabled": true, "action": "BLOCK", "profiles": ["email"]}')
    page.get_by_role("button", name="Create gateway").click()
    page.get_by_role("cell", name="made-in-browser", exact=True).wait_for()
    made = api.http.get(
        f"/client/v4/accounts/{ACCT}/ai-gateway/gateways/made-in-browser",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ).json()["result"]
    assert made["dlp"]["enabled"] is True, made["dlp"]  # a structured setting, written as JSON
    shots(page, "gateways", folder)

    # Tokens: create one with read, then sign in with it.
    page.goto(f"{base}/dashboard/#/tokens")
    page.get_by_label("Name").fill("browser-token")
    page.get_by_label("read").check()
    page.get_by_role("button", name="Create token").click()
    value = page.get_by_label("New token value").inner_text().strip()
    shots(page, "tokens", folder)
    page.goto(f"{base}/dashboard/#/keys?gateway={gateway}")
    page.get_by_role("heading", name="Provider keys").wait_for()
    shots(page, "provider-keys", folder)
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, base, value)
    page.get_by_role("heading", name="Overview").wait_for()  # signed in and rendered
    page.goto(f"{base}/dashboard/#/logs?gateway={gateway}")
    row = page.get_by_role("cell", name="gpt-4o-mini").first
    try:
        row.wait_for(timeout=10_000)
    except Exception:
        # Seen once, in a CI run on a loaded machine: the rows did not show after this sign-in
        # with the new token, and the cause is not found yet. Keep the evidence, then check that
        # a reload shows them (the token itself must work either way).
        page.screenshot(path=str(folder / "logs-after-token-sign-in-stalled.png"), full_page=True)
        page.reload()
        row.wait_for(timeout=20_000)

    assert page.foreign_hosts == []  # type: ignore[attr-defined]
    # The one expected error: the wrong token's 401 at the first sign-in.
    errors = [e for e in page.console_errors if "401" not in e]  # type: ignore[attr-defined]
    assert errors == []


def test_dashboard_headers(server: GatewayServer) -> None:
    response = httpx.get(f"{server.url}/", follow_redirects=True)
    assert response.status_code == 200 and str(response.url).endswith("/dashboard/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert httpx.get(f"{server.url}/dashboard/../app/main.py").status_code == 404
    assert httpx.get(f"{server.url}/dashboard/vendor/uPlot.iife.min.js").status_code == 200
