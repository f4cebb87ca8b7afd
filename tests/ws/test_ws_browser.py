"""A real browser as a client of the universal WebSocket session (protocol.md §5, §6).

Headless Chromium opens tests/ws/browser/ws_client.html, served by a small local server. The page
connects with the token as a subprotocol entry (browsers cannot set WebSocket headers), sends one
streaming request, reassembles the text and POSTs the result back to the page's server, which the
test reads. Chromium is the Debian package (`apt-get install -y chromium`); without it these tests
are skipped.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from tests.conftest import GatewayServer
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import Api, api_client
from tests.support.server_thread import ServerThread
from tests.support.ws import SUBPROTOCOL_PREFIX, barrier, log_db, ws_url

CHROMIUM = Path("/usr/bin/chromium")
PAGE = Path(__file__).parent / "browser" / "ws_client.html"
TEXT = "Hello from a real browser"
RESULT_TIMEOUT_S = 30.0

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="headless Chromium not installed: apt-get install -y chromium"
)


class PageServer:
    """Serves the client page and collects the results the page POSTs back."""

    def __init__(self) -> None:
        self.results: queue.Queue[dict[str, Any]] = queue.Queue()

        async def page(_request: Request) -> Response:
            return FileResponse(PAGE, media_type="text/html")

        async def result(request: Request) -> Response:
            self.results.put(json.loads(await request.body()))
            return Response(status_code=204)

        app = Starlette(routes=[Route("/ws_client.html", page), Route("/result", result, methods=["POST"])])
        self.server = ServerThread(app, lifespan="off", name="browser-page")

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def page_server() -> Iterator[PageServer]:
    pages = PageServer()
    with pages.server:
        yield pages


@pytest.fixture
def api(server: GatewayServer, upstream: FakeUpstream) -> Iterator[Api]:
    with api_client(server) as client:
        yield client


def run_page(pages: PageServer, profile: Path, ws: str, token: str) -> dict[str, Any]:
    """Open the page in headless Chromium and return the result it reports."""
    query = urlencode({"ws": ws, "token": token, "report": f"{pages.url}/result", "text": TEXT})
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",  # tests run as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        f"{pages.url}/ws_client.html?{query}",
    ]
    browser = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so its helper processes stop with it
    )
    try:
        return pages.results.get(timeout=RESULT_TIMEOUT_S)
    except queue.Empty:
        browser.kill()
        _, stderr = browser.communicate(timeout=10)
        raise AssertionError(
            f"the page reported nothing; chromium said:\n{stderr.decode()[-3000:]}"
        ) from None
    finally:
        if browser.poll() is None:
            os.killpg(browser.pid, signal.SIGTERM)
            try:
                browser.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(browser.pid, signal.SIGKILL)
                browser.wait(10)
        if browser.stderr is not None:
            browser.stderr.close()


def test_browser_streams_with_subprotocol_token(
    api: Api, server: GatewayServer, page_server: PageServer, tmp_path: Path, upstream: FakeUpstream
) -> None:
    gateway_id = api.new_gateway()
    token = str(api.new_token()["value"])
    result = run_page(page_server, tmp_path / "profile", ws_url(server, gateway_id), token)

    assert result["ok"] is True, result
    assert result["text"] == TEXT
    assert result["protocol"] == f"{SUBPROTOCOL_PREFIX}{token}"  # the browser saw its entry selected
    assert result["streamFrames"] == len(TEXT.split()) + 3  # role, words, stop, usage
    assert result["created"]["status"] == 200 and result["created"]["step"] == "0"
    assert result["done"] == result["created"]
    assert result["errorEvent"] is False

    assert upstream.count() == 1
    assert json.loads(upstream.last.body)["stream"] is True
    (row,) = log_db(server).wait_gateway(gateway_id)
    assert row["request_type"] == "websocket" and row["success"] == 1
    assert row["user_agent"] and "Chrome" in row["user_agent"]


def test_browser_with_wrong_token_fails_to_connect(
    api: Api, server: GatewayServer, page_server: PageServer, tmp_path: Path, upstream: FakeUpstream
) -> None:
    gateway_id = api.new_gateway()
    wrong = str(api.new_token()["value"])[:-4] + "AAAA"
    result = run_page(page_server, tmp_path / "profile", ws_url(server, gateway_id), wrong)

    assert result == {"ok": False, "result": "ERROR:1006", "errorEvent": True}
    log = log_db(server)
    barrier(api, log)
    assert log.rows("gateway_id = ?", (gateway_id,)) == []
    assert upstream.count() == 1  # the barrier's request only
