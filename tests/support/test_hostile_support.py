"""The hostile test infrastructure does what it says: HostileUpstream's scenarios, ForwardProxy and the
private CA of tests/support/tls_certs.py."""

from __future__ import annotations

import json
import socket
import ssl
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.forward_proxy import ForwardProxy
from tests.support.hostile_upstream import HOSTILE_OK_JSON, HostileUpstream, MiB, bomb_payload
from tests.support.tls_certs import CertificateAuthority, make_ca, self_signed, server_context

CHAT = "/v1/chat/completions"


@pytest.fixture
def hostile() -> Iterator[HostileUpstream]:
    with HostileUpstream() as server:
        yield server


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as p:
        yield p


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return make_ca(tmp_path)


def raw_exchange(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send `request` on a fresh socket and read until the server closes (or goes quiet)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while data := sock.recv(65536):
                chunks.append(data)
        except TimeoutError:
            pass
        return b"".join(chunks)


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """(head, body) of one Content-Length response from a raw socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(ln.split(b":", 1)[1]) for ln in lines if ln.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


# ---- HostileUpstream -------------------------------------------------------------------------------


def test_ok_keep_alive_records_requests(hostile: HostileUpstream) -> None:
    with httpx.Client(base_url=hostile.url, timeout=5) as client:
        first = client.post(CHAT, json={"model": "gpt-4o-mini", "n": 1})
        second = client.post(CHAT, content=b"second-body", headers={"X-Trace": "abc"})
    assert first.status_code == second.status_code == 200
    assert first.content == HOSTILE_OK_JSON
    assert first.json()["choices"][0]["message"]["content"] == "hello"
    assert hostile.connections == 1  # keep-alive: both on one connection
    requests = hostile.requests
    assert [(r.method, r.target, r.connection) for r in requests] == [("POST", CHAT, 0), ("POST", CHAT, 0)]
    assert json.loads(requests[0].body) == {"model": "gpt-4o-mini", "n": 1}
    assert requests[1].header("x-trace") == "abc"
    assert hostile.saw(b"second-body") and hostile.saw(b"X-Trace: abc")
    assert not hostile.saw(b"never-sent")
    assert hostile.bytes_sent() > 2 * len(HOSTILE_OK_JSON)
    hostile.reset()
    assert (hostile.requests, hostile.connections, hostile.bytes_sent()) == ([], 0, 0)
    assert not hostile.saw(b"second-body")


def test_chunked_request_body_is_parsed(hostile: HostileUpstream) -> None:
    request = (
        b"POST /v1/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n"
    )
    answer = raw_exchange(hostile.port, request)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(HOSTILE_OK_JSON)
    assert hostile.requests[0].body == b"hello world"


def test_scenario_by_header_and_by_path(hostile: HostileUpstream) -> None:
    with httpx.Client(base_url=hostile.url, timeout=5) as client:
        by_header = client.post(CHAT, json={}, headers={"X-Hostile": "set-cookie"})
        by_path = client.post("/v1/s/echo-headers/chat/completions", json={}, headers={"X-Probe": "1"})
        slow = client.get("/s/slow:0.05/x")  # the argument in the path
        unknown = client.get("/", headers={"x-hostile": "no-such-thing"})
    assert by_header.headers["set-cookie"] == "session=tenant-a; Path=/"
    assert ["X-Probe", "1"] in by_path.json()["headers"]
    assert slow.content == HOSTILE_OK_JSON
    assert unknown.status_code == 404


def test_header_arg_and_sse(hostile: HostileUpstream) -> None:
    with httpx.Client(base_url=hostile.url, timeout=5) as client:
        started = time.monotonic()
        slow = client.get("/", headers={"x-hostile": "slow", "x-hostile-arg": "0.3"})
        elapsed = time.monotonic() - started
        sse = client.get("/", headers={"x-hostile": "ok-sse"})
    assert slow.status_code == 200 and 0.3 <= elapsed < 2
    data = [line[6:] for line in sse.text.split("\n") if line.startswith("data: ")]
    assert data[-1] == "[DONE]" and len(data) == 4
    assert all(json.loads(d)["object"] == "chat.completion.chunk" for d in data[:3])


def test_204_then_200_bytes_exact(hostile: HostileUpstream) -> None:
    answer = raw_exchange(
        hostile.port, b"GET /s/204-then-200/ HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )
    assert answer == (
        b"HTTP/1.1 204 No Content\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
    )


def test_reset_after_read(hostile: HostileUpstream) -> None:
    body = b'{"secret":"reset-me"}'
    with socket.create_connection(("127.0.0.1", hostile.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/s/reset-after-read/chat/completions HTTP/1.1\r\nHost: h\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        with pytest.raises(ConnectionResetError):
            while sock.recv(65536):
                pass
    assert [r.body for r in hostile.requests] == [body]
    with httpx.Client(base_url=hostile.url, timeout=5) as client, pytest.raises(httpx.ReadError):
        client.get("/", headers={"x-hostile": "reset-after-read"})


def test_gzip_bomb_is_small_and_inflates_to_zeros(hostile: HostileUpstream) -> None:
    with socket.create_connection(("127.0.0.1", hostile.port), timeout=10) as sock:
        sock.sendall(b"GET /v1/s/gzip-bomb/chat/completions HTTP/1.1\r\nHost: h\r\n\r\n")
        head, body = read_response(sock)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nContent-Encoding: gzip" in head
    assert len(body) <= 2.5 * MiB
    assert body == bomb_payload("gzip")
    inflater = zlib.decompressobj(wbits=31)
    first = inflater.decompress(body, MiB)  # only the first MiB: never the whole GiB
    assert first == b"0" * MiB
    # The gzip trailer promises >= 1 GiB (ISIZE is mod 2**32; 1 GiB fits).
    assert int.from_bytes(body[-4:], "little") == 1024 * MiB


def test_flood_stops_when_the_client_stops_reading(hostile: HostileUpstream) -> None:
    with socket.create_connection(("127.0.0.1", hostile.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nx-hostile: endless-body\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 200 OK")
        time.sleep(0.3)  # socket buffers fill up, then the server blocks on backpressure
        stalled = hostile.bytes_sent()
        time.sleep(0.2)
        assert hostile.bytes_sent() == stalled < 64 * MiB


# ---- ForwardProxy and TLS --------------------------------------------------------------------------


def test_proxy_relays_absolute_form(hostile: HostileUpstream, proxy: ForwardProxy) -> None:
    with httpx.Client(proxy=proxy.url, timeout=5) as client:
        answer = client.post(f"{hostile.url}{CHAT}?q=1", json={"via": "proxy"})
    assert answer.status_code == 200 and answer.content == HOSTILE_OK_JSON
    assert proxy.seen == [("POST", f"{hostile.url}{CHAT}?q=1")]
    (request,) = hostile.requests
    assert request.target == f"{CHAT}?q=1"  # origin-form at the origin
    assert json.loads(request.body) == {"via": "proxy"}
    assert request.header("connection") == "close"
    proxy.reset()
    assert proxy.seen == []


def test_proxy_tunnels_connect_to_tls_upstream(
    tmp_path: Path, ca: CertificateAuthority, proxy: ForwardProxy
) -> None:
    issued = ca.issue(tmp_path, ["localhost"], ["127.0.0.1"])
    with HostileUpstream(ssl_context=server_context(issued)) as tls_upstream:
        assert tls_upstream.url.startswith("https://127.0.0.1:")
        verify = ssl.create_default_context(cafile=ca.cert_path)
        with httpx.Client(proxy=proxy.url, verify=verify, timeout=5) as client:
            answer = client.post(f"{tls_upstream.url}{CHAT}", json={"tls": True})
        assert answer.status_code == 200 and answer.content == HOSTILE_OK_JSON
        assert json.loads(tls_upstream.requests[0].body) == {"tls": True}
    assert proxy.seen == [("CONNECT", f"127.0.0.1:{tls_upstream.port}")]


def test_self_signed_fails_verification_against_the_ca(tmp_path: Path, ca: CertificateAuthority) -> None:
    rogue = self_signed(tmp_path, ["localhost"], ["127.0.0.1"])
    with HostileUpstream(ssl_context=server_context(rogue)) as tls_upstream:
        verify = ssl.create_default_context(cafile=ca.cert_path)
        with (
            socket.create_connection(("127.0.0.1", tls_upstream.port), timeout=5) as sock,
            pytest.raises(ssl.SSLCertVerificationError),
        ):
            verify.wrap_socket(sock, server_hostname="127.0.0.1")
        with httpx.Client(verify=verify, timeout=5) as client, pytest.raises(httpx.ConnectError):
            client.get(tls_upstream.url)
        assert tls_upstream.requests == []


def test_tls_flood_ends_when_the_client_goes(
    tmp_path: Path, ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over TLS a dead peer's writes vanish below the TLS layer: the flood must still stop, and not
    starve the server's other connections."""
    # asyncio's debug mode (read when the server's loop is created) reliably shows the spin.
    monkeypatch.setenv("PYTHONASYNCIODEBUG", "1")
    issued = ca.issue(tmp_path, ["localhost"], ["127.0.0.1"])
    verify = ssl.create_default_context(cafile=ca.cert_path)
    with (
        HostileUpstream(ssl_context=server_context(issued)) as tls_upstream,
        httpx.Client(base_url=tls_upstream.url, verify=verify, timeout=5) as client,
    ):
        with client.stream("GET", "/", headers={"x-hostile": "endless-body"}) as flood:
            received = 0
            for block in flood.iter_raw():
                received += len(block)
                if received > MiB:
                    break
        assert client.get("/").content == HOSTILE_OK_JSON  # a new connection is served at once
        time.sleep(0.2)
        stopped = tls_upstream.bytes_sent()
        time.sleep(0.2)
        assert tls_upstream.bytes_sent() == stopped
