"""A stored provider key only goes to its provider's host (SSRF): template segments (Azure's
resource and deployment, Bedrock's service and region, Vertex's region) are plain labels after
percent-decoding, `.` / `..` segments and `#` are refused, and pass-through paths are matched as
sent (an encoded `%2F`, `%23` or `%3F` is never decoded into the upstream URL).

The gateway here has no override for the template providers, so it builds their real URLs; a
plain TCP listener of the test on a loopback port records any connection it gets, and must get
none: every shape that would have pointed the URL (and the key in it) at that port is 400 / 2010.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.core.errors import MalformedRequest
from app.providers.catalog import get_provider
from tests.conftest import GatewayServer
from tests.support.fake_upstream import FakeUpstream, upstream_overrides_for
from tests.support.helpers import ACCT, api_client, running_gateway
from tests.support.management import SECRET_KEY

SECRET = "sk-stored-must-stay-home-0123456789"
TEMPLATE_SLUGS = ("azure_openai", "aws_bedrock", "google_vertex_ai")
HI = {"messages": [{"role": "user", "content": "hi"}]}


class Listener:
    """A plain TCP listener on 127.0.0.1 that records every connection and the bytes it received;
    with `answer`, it replies to each request with that HTTP response and closes."""

    def __init__(self, answer: bytes | None = None) -> None:
        self.answer = answer
        self.connections = 0
        self.received: list[bytes] = []
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="ssrf-listener", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        data = b""
        conn.settimeout(2)
        with conn:
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                     if line.lower().startswith(b"content-length:")),
                    0,
                )  # fmt: skip
                while len(body) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                data = head + b"\r\n\r\n" + body
                if self.answer is not None:
                    conn.sendall(self.answer)
            except OSError:
                pass
            with self._lock:
                self.received.append(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    sock = Listener()
    yield sock
    sock.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream) -> Iterator[GatewayServer]:
    """A gateway whose template providers (Azure, Bedrock, Vertex) go to their real hosts."""
    overrides = {
        k: v for k, v in upstream_overrides_for(fake_upstream.url).items() if k not in TEMPLATE_SLUGS
    }
    base: Path = tmp_path_factory.mktemp("ssrf")
    with running_gateway(base, fake_upstream.url, secret_key=SECRET_KEY, upstream_overrides=overrides) as gw:
        yield gw


@pytest.fixture(scope="module")
def keyed(server: GatewayServer) -> tuple[str, str]:
    """(gateway id, run token): an authenticated gateway with a stored key for each template provider."""
    with api_client(server) as api:
        gateway_id = api.new_gateway(authentication=True)
        for slug in ("azure-openai", "aws-bedrock", "google-vertex-ai"):
            body = {"provider_slug": slug, "alias": "default", "secret": SECRET}
            path = f"/client/v4/accounts/{ACCT}/ai-gateway/gateways/{gateway_id}/provider_configs"
            r = api.http.post(path, json=body, headers={"Authorization": "Bearer test-admin-token"})
            assert r.status_code == 200, r.text
        token = str(api.new_token()["value"])
    return gateway_id, token


def send_raw(
    server: GatewayServer, method: str, target: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, Any]:
    """One request with the target exactly as given (no client-side normalisation of `..`)."""
    parts = urlsplit(server.url)
    assert parts.hostname is not None and parts.port is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw.startswith((b"{", b"[")) else raw
    finally:
        conn.close()


def assert_2010(status: int, body: Any) -> str:
    assert status == 400, (status, body)
    assert body["success"] is False and body["error"][0]["code"] == 2010, body
    return str(body["error"][0]["message"])


def passthrough_shapes(port: int) -> list[str]:
    """Provider paths below /v1/{acct}/{gw}/ that would point a naive URL builder elsewhere."""
    at = f"127.0.0.1:{port}"
    return [
        f"azure-openai/{at}%23/dep/chat/completions",
        f"azure-openai/{at}%3F/dep/chat/completions",
        f"azure-openai/{at}%2F/dep/chat/completions",
        f"azure-openai/{at}%2f/dep/chat/completions",
        f"azure-openai/x@{at}%23/dep/chat/completions",
        f"azure-openai/x%40{at}%23/dep/chat/completions",
        f"azure-openai/{at}/dep/chat/completions",
        "azure-openai/res%2e/dep/chat/completions",
        "azure-openai/res/dep/../../chat/completions",
        "azure-openai/res/dep/%2e%2e/chat/completions",
        "azure-openai/res/dep/%2E%2e/%2e%2E/chat/completions",
        "azure-openai/res/dep/.%2e/chat/completions",
        "azure-openai/res/dep/./chat/completions",
        "azure-openai/res/dep/chat%2F..%2Fcompletions",
        "azure-openai/../dep/chat/completions",
        "azure-openai/%2e%2e/dep/chat/completions",
        "azure-openai/res//chat/completions",
        f"aws-bedrock/{at}%23/us-east-1/model/m/invoke",
        f"aws-bedrock/{at}%3F/us-east-1/model/m/invoke",
        f"aws-bedrock/{at}%2F/us-east-1/model/m/invoke",
        f"aws-bedrock/x@{at}%23/us-east-1/model/m/invoke",
        f"aws-bedrock/bedrock-runtime/{at}%23/model/m/invoke",
        "aws-bedrock/bedrock-runtime/us-east-1.x/model/m/invoke",
        "aws-bedrock/bedrock-runtime/us-east-1/model/../../m/invoke",
        "aws-bedrock/bedrock-runtime/us-east-1/model/%2e%2e/m/invoke",
        f"google-vertex-ai/v1/projects/p/locations/{at}%23/publishers/google/models/g:generateContent",
        "google-vertex-ai/v1/projects/p/locations/us-central1/../../x:generateContent",
    ]


def universal_shapes(port: int) -> list[tuple[str, str]]:
    """(provider, endpoint) of universal steps that would point a naive URL builder elsewhere."""
    at = f"127.0.0.1:{port}"
    return [
        ("azure-openai", f"{at}#/dep/chat/completions"),
        ("azure-openai", f"{at}%23/dep/chat/completions"),
        ("azure-openai", f"{at}%3F/dep/chat/completions"),
        ("azure-openai", f"{at}?/dep/chat/completions"),
        ("azure-openai", f"{at}%2F/dep/chat/completions"),
        ("azure-openai", f"{at}/dep/chat/completions"),
        ("azure-openai", f"x@{at}%23/dep/chat/completions"),
        ("azure-openai", "res/dep/chat/completions#x"),
        ("azure-openai", "res/dep/../../chat/completions"),
        ("azure-openai", "res/dep/%2e%2e/chat/completions"),
        ("azure-openai", "res/dep/.%2E/chat/completions"),
        ("azure-openai", "res/dep/chat\\..\\completions"),
        ("azure-openai", "/res/./dep/chat/completions"),
        ("azure-openai", ".%2e/dep/chat/completions"),
        ("aws-bedrock", f"{at}%23/us-east-1/model/m/invoke"),
        ("aws-bedrock", f"{at}#/us-east-1/model/m/invoke"),
        ("aws-bedrock", f"bedrock-runtime/{at}%2F/model/m/invoke"),
        ("aws-bedrock", "bedrock-runtime/us-east-1/model/%2e%2e/invoke"),
        ("google-vertex-ai", f"v1/projects/p/locations/{at}%23/publishers/google/models/g:generateContent"),
        ("google-vertex-ai", "v1/projects/p/locations//publishers/google/models/g:generateContent"),
    ]


@pytest.mark.parametrize("index", range(len(passthrough_shapes(1))))
def test_passthrough_shapes_are_2010_and_never_connect(
    server: GatewayServer, keyed: tuple[str, str], listener: Listener, index: int
) -> None:
    gateway_id, token = keyed
    path = passthrough_shapes(listener.port)[index]
    status, body = send_raw(
        server, "POST", f"/v1/{ACCT}/{gateway_id}/{path}", {"cf-aig-authorization": f"Bearer {token}"},
        json.dumps(HI).encode(),
    )  # fmt: skip
    assert_2010(status, body)
    assert listener.connections == 0 and listener.received == []


@pytest.mark.parametrize("index", range(len(universal_shapes(1))))
def test_universal_shapes_are_2010_and_never_connect(
    server: GatewayServer, keyed: tuple[str, str], listener: Listener, index: int
) -> None:
    gateway_id, token = keyed
    provider, endpoint = universal_shapes(listener.port)[index]
    step = {"provider": provider, "endpoint": endpoint, "headers": {}, "query": HI}
    status, body = send_raw(
        server, "POST", f"/v1/{ACCT}/{gateway_id}", {"cf-aig-authorization": f"Bearer {token}"},
        json.dumps(step).encode(),
    )  # fmt: skip
    assert_2010(status, body)
    assert listener.connections == 0 and listener.received == []


def test_a_bad_later_step_is_refused_before_any_call(
    server: GatewayServer, keyed: tuple[str, str], listener: Listener, upstream: FakeUpstream
) -> None:
    gateway_id, token = keyed
    steps = [
        {"provider": "openai", "endpoint": "chat/completions", "headers": {}, "query": HI},
        {
            "provider": "azure-openai",
            "endpoint": f"127.0.0.1:{listener.port}%23/d/x",
            "headers": {},
            "query": HI,
        },
    ]
    status, body = send_raw(
        server, "POST", f"/v1/{ACCT}/{gateway_id}", {"cf-aig-authorization": f"Bearer {token}"},
        json.dumps(steps).encode(),
    )  # fmt: skip
    assert "resource" in assert_2010(status, body)
    assert upstream.requests == [] and listener.connections == 0


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("azure-openai/127.0.0.1:1%23/dep/chat/completions", "azure-openai: invalid resource segment"),
        ("azure-openai/res/dep.x/chat/completions", "azure-openai: invalid deployment segment"),
        ("aws-bedrock/a%3Fb/us-east-1/model/m/invoke", "aws-bedrock: invalid service segment"),
        ("aws-bedrock/bedrock-runtime/us@east/model/m/invoke", "aws-bedrock: invalid region segment"),
        ("google-vertex-ai/v1/projects/p/locations/a.b/x", "google-vertex-ai: invalid region segment"),
    ],
)
def test_the_message_names_the_segment(
    server: GatewayServer, keyed: tuple[str, str], path: str, named: str
) -> None:
    gateway_id, token = keyed
    auth = {"cf-aig-authorization": f"Bearer {token}"}
    status, body = send_raw(server, "POST", f"/v1/{ACCT}/{gateway_id}/{path}", auth, b"{}")
    assert named in assert_2010(status, body)


def test_an_encoded_path_reaches_the_upstream_as_sent(tmp_path: Path, upstream: FakeUpstream) -> None:
    """`%2F`, `%23`, `%3F` in a pass-through endpoint stay encoded in the upstream request line."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    fake = Listener(answer)
    try:
        overrides = {"openai": f"http://127.0.0.1:{fake.port}/v1"}
        with running_gateway(tmp_path, upstream.url, upstream_overrides=overrides) as gateway:
            with api_client(gateway) as api:
                gateway_id = api.new_gateway()
            status, body = send_raw(
                gateway, "GET", f"/v1/{ACCT}/{gateway_id}/openai/files/a%2Fb%23c%3Fd?x=1", {}
            )
        assert status == 200, body
        assert fake.received[0].startswith(b"GET /v1/files/a%2Fb%23c%3Fd?x=1 HTTP/1.1\r\n"), fake.received
    finally:
        fake.close()


def test_encoded_ids_are_decoded_and_checked(server: GatewayServer, keyed: tuple[str, str]) -> None:
    gateway_id, _ = keyed
    # An encoded `/` in the ids cannot move the provider segment: refused, whatever the method.
    for method in ("POST", "GET"):
        status, body = send_raw(server, method, f"/v1/{ACCT}/{gateway_id}%2Fopenai%2Fchat", {}, b"{}")
        assert_2010(status, body)
    status, body = send_raw(server, "POST", f"/v1/{ACCT}/{gateway_id}/open%61i%2Fx/chat", {}, b"{}")
    assert_2010(status, body)


# ---- the URLs built ------------------------------------------------------------------------------------


def test_legitimate_template_urls() -> None:
    azure, bedrock, vertex = (get_provider(s) for s in ("azure-openai", "aws-bedrock", "google-vertex-ai"))
    assert azure.upstream_url("my-res/gpt-4o_prod/chat/completions", "a", None) == (
        "https://my-res.openai.azure.com/openai/deployments/gpt-4o_prod/chat/completions"
    )
    assert azure.upstream_url("my%2Dres/dep/chat/completions", "a", None) == (
        "https://my-res.openai.azure.com/openai/deployments/dep/chat/completions"
    )
    assert bedrock.upstream_url(
        "bedrock-runtime/us-east-1/model/anthropic.claude-v2%3A1/invoke", "a", None
    ) == ("https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-v2%3A1/invoke")
    assert bedrock.upstream_url("bedrock/eu-west-3/foundation-models", "a", None) == (
        "https://bedrock.eu-west-3.amazonaws.com/foundation-models"
    )
    path = "v1/projects/p/locations/europe-west4/publishers/google/models/gemini:generateContent"
    assert vertex.upstream_url(path, "a", None) == f"https://europe-west4-aiplatform.googleapis.com/{path}"
    path = "v1/projects/p/locations/global/publishers/google/models/gemini:generateContent"
    assert vertex.upstream_url(path, "a", None) == f"https://aiplatform.googleapis.com/{path}"
    assert vertex.upstream_url("v1/projects/p/models", "a", None) == (
        "https://us-central1-aiplatform.googleapis.com/v1/projects/p/models"
    )


def test_overrides_fill_placeholders_and_keep_the_segment_rule() -> None:
    azure, bedrock = get_provider("azure-openai"), get_provider("aws-bedrock")
    assert azure.upstream_url("res/dep/chat", "a", "http://127.0.0.1:9/{resource}/{deployment}") == (
        "http://127.0.0.1:9/res/dep/chat"
    )
    assert bedrock.upstream_url("bedrock-runtime/us-east-1/model/m/invoke", "a", "http://127.0.0.1:9") == (
        "http://127.0.0.1:9/model/m/invoke"
    )
    for endpoint in ("r%23/dep/chat", "r/d.x/chat", "r:1/dep/chat", "r@h/dep/chat", "/dep/chat"):
        with pytest.raises(MalformedRequest):
            azure.upstream_url(endpoint, "a", "http://127.0.0.1:9/{resource}/{deployment}")


@pytest.mark.parametrize(
    "segment",
    ["-a", "_a", "a.b", "a:1", "a@b", "a%2Fb", "a%23", "a%3F", "a%00", "a b", "é", "a" * 64, "%2e%2e"],
)
def test_segment_rule(segment: str) -> None:
    with pytest.raises(MalformedRequest, match="invalid resource segment"):
        get_provider("azure-openai").upstream_url(f"{segment}/dep/chat", "a", None)


@pytest.mark.parametrize("segment", ["a", "A1", "a-b_c", "a" * 63, "bedrock-runtime", "a%2Db"])
def test_segment_rule_accepts(segment: str) -> None:
    url = get_provider("azure-openai").upstream_url(f"{segment}/dep/chat", "a", None)
    assert urlsplit(url).hostname == f"{segment.replace('%2D', '-')}.openai.azure.com".lower()
