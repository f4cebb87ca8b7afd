"""Node's `ws` package as a client of the universal WebSocket session (protocol.md §5, §6): the token
in the `cf-aig-authorization` header, one request, the frames printed as JSON by tests/ws/node/client.mjs.

Needs `node` and `npm` on PATH; `npm install` runs in tests/node when node_modules is missing (the
registry must be reachable then). Otherwise these tests are skipped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GatewayServer
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import Api, api_client, openai_step
from tests.support.ws import barrier, chunk_text, log_db, ws_url

NODE_DIR = Path(__file__).parent / "node"
TEXT = "Hello from node over a websocket"


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed on PATH (apt-get install -y nodejs npm)")
    if not (NODE_DIR / "node_modules" / "ws" / "package.json").exists():
        try:
            install = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund"],
                cwd=NODE_DIR,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.skip("npm install in tests/node timed out (is the npm registry reachable?)")
        if install.returncode != 0:
            pytest.skip(f"npm install in tests/node failed (no network?):\n{install.stderr[-2000:]}")
    return node


@pytest.fixture
def api(server: GatewayServer, upstream: FakeUpstream) -> Iterator[Api]:
    with api_client(server) as client:
        yield client


def run_client(node: str, url: str, token: str, request: Any = None) -> dict[str, Any]:
    args = [node, "client.mjs", url, token]
    if request is not None:
        args.append(json.dumps(request))
    done = subprocess.run(args, cwd=NODE_DIR, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_node_client_with_header_token(
    node: str, api: Api, server: GatewayServer, upstream: FakeUpstream
) -> None:
    gateway_id = api.new_gateway()
    result = run_client(node, ws_url(server, gateway_id), str(api.new_token()["value"]))

    assert result["protocol"] == ""  # header auth: no subprotocol selected
    (frame,) = result["frames"]
    assert frame["type"] == "universal.created"
    assert frame["metadata"]["eventId"] == "node-1"
    assert frame["metadata"]["status"] == 200 and frame["metadata"]["step"] == "0"
    assert frame["response"]["choices"][0]["message"]["content"] == "Hello from fake"
    assert upstream.count() == 1
    assert upstream.last.headers["authorization"] == "Bearer sk-node"
    assert not [name for name in upstream.last.headers if name.startswith("cf-aig")]
    (row,) = log_db(server).wait_gateway(gateway_id)
    assert row["request_type"] == "websocket" and row["event_id"] == "node-1"
    assert row["id"] == frame["metadata"]["logId"]


def test_node_client_stream(node: str, api: Api, server: GatewayServer) -> None:
    gateway_id = api.new_gateway()
    request = openai_step({"x-fake-text": TEXT}, stream=True, eventId="node-stream")
    result = run_client(node, ws_url(server, gateway_id), str(api.new_token()["value"]), request)

    frames = result["frames"]
    assert [f["type"] for f in frames] == (
        ["universal.created"] + ["universal.stream"] * (len(TEXT.split()) + 3) + ["universal.done"]
    )
    assert "".join(chunk_text(f["response"]) for f in frames[1:-1]) == TEXT
    assert frames[-1]["metadata"] == frames[0]["metadata"]


def test_node_client_refused_without_valid_token(node: str, api: Api, server: GatewayServer) -> None:
    gateway_id = api.new_gateway()
    result = run_client(node, ws_url(server, gateway_id), "not-a-token")

    assert result["refused"] == 401
    assert json.loads(result["body"])["error"][0]["code"] == 2009
    log = log_db(server)
    barrier(api, log)
    assert log.rows("gateway_id = ?", (gateway_id,)) == []
