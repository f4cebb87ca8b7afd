"""A real HTTP server imitating AI providers (formats in tests/support/fake_providers.py).

`FakeUpstream` is a raw ASGI app served by uvicorn on a loopback port. It records every request it
receives and answers in the providers' own wire formats (OpenAI chat completions, Workers AI,
Anthropic messages, Google AI Studio). Behaviour is chosen by `x-fake-*` request headers so that
tests can drive it through the gateway, which forwards step and provider headers upstream:

| header | effect |
|---|---|
| `x-fake-status: N` | answer N with a provider-style JSON error body (ignored if N < 400) |
| `x-fake-retry-after: S` | add `Retry-After: S` to the response |
| `x-fake-fail-times: N` | the first N requests with the same fail key fail (500 or `x-fake-status`) |
| `x-fake-fail-key: K` | counter key for `x-fake-fail-times` (default `default`), kept in the server |
| `x-fake-delay-ms: N` | sleep before the response headers are sent |
| `x-fake-chunk-delay-ms: N` | sleep between stream events |
| `x-fake-cut-after: N` | streams: send N events, then drop the connection with no terminating chunk; |
|                       | non-streams: send the first N bytes of the body, then drop the connection |
| `x-fake-text: T` | the assistant text (default `Hello from fake`) |
| `x-fake-bytes: N` | size of the `…/binary` body (default 1024) |
| `x-fake-error-style: S` | force the error body style: `openai`, `anthropic`, `google`, `workers_ai` |
| `x-fake-set-cookie: C` | add `Set-Cookie: C` to the response |

Every response carries `x-fake-seq` (1-based number of the request since the last reset) and
`x-request-id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from dataclasses import dataclass
from types import TracebackType

from tests.support.fake_providers import (
    GOOGLE_PATH,
    BadRequest,
    ClientGone,
    FakeResponse,
    RecordedRequest,
    UpstreamCut,
    anthropic_messages,
    count_words,
    error_body,
    google_generate,
    json_object,
    openai_chat,
    openai_embeddings,
    workers_ai_run,
)
from tests.support.fake_responses import openai_responses
from tests.support.server_thread import Receive, Scope, Send, ServerThread

DEFAULT_TEXT = "Hello from fake"
DEFAULT_BINARY_BYTES = 1024


@dataclass(frozen=True)
class _Controls:
    status: int | None
    retry_after: str | None
    fail_times: int | None
    fail_key: str
    delay_ms: int
    chunk_delay_ms: int
    cut_after: int | None
    text: str
    n_bytes: int
    error_style: str | None
    set_cookie: str | None

    @classmethod
    def parse(cls, headers: dict[str, str]) -> _Controls:
        def as_int(name: str) -> int | None:
            raw = headers.get(name)
            if raw is None or not raw.strip():
                return None
            return int(raw.strip())

        n_bytes = as_int("x-fake-bytes")
        return cls(
            status=as_int("x-fake-status"),
            retry_after=headers.get("x-fake-retry-after"),
            fail_times=as_int("x-fake-fail-times"),
            fail_key=headers.get("x-fake-fail-key", "default"),
            delay_ms=as_int("x-fake-delay-ms") or 0,
            chunk_delay_ms=as_int("x-fake-chunk-delay-ms") or 0,
            cut_after=as_int("x-fake-cut-after"),
            text=headers.get("x-fake-text", DEFAULT_TEXT),
            n_bytes=DEFAULT_BINARY_BYTES if n_bytes is None else n_bytes,
            error_style=headers.get("x-fake-error-style"),
            set_cookie=headers.get("x-fake-set-cookie"),
        )


_WORKERS_AI_RE = re.compile(r"^(?:/client/v4/accounts/(?P<acct>[^/]+))?/ai/run/(?P<model>.+)$")
_ANTHROPIC_RE = re.compile(r"(?:^|/)v1/messages$")
_ANTHROPIC_COUNT_RE = re.compile(r"(?:^|/)v1/messages/count_tokens$")


def _route(method: str, path: str) -> tuple[str, str]:
    """(handler name, error style) for a request."""
    if method == "POST":
        if path.endswith("/chat/completions"):
            return "openai_chat", "openai"
        if path.endswith("/embeddings"):
            return "openai_embeddings", "openai"
        if path.endswith("/responses"):
            return "openai_responses", "openai"
        if _ANTHROPIC_COUNT_RE.search(path):
            return "anthropic_count_tokens", "anthropic"
        if _ANTHROPIC_RE.search(path):
            return "anthropic_messages", "anthropic"
        if GOOGLE_PATH.search(path):
            return "google", "google"
        if _WORKERS_AI_RE.match(path):
            return "workers_ai", "workers_ai"
    if method in ("GET", "POST") and path.endswith("/binary"):
        return "binary", "openai"
    if method == "GET" and path.endswith("/models"):
        return "openai_models", "openai"
    return "echo", "openai"


# --------------------------------------------------------------------------------------------------
# The fake.
# --------------------------------------------------------------------------------------------------


class FakeUpstream:
    """Fake AI provider server. Use as a context manager or call start()/stop()."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._fail_counts: dict[str, int] = {}
        self._seq = 0
        self._stopping = threading.Event()
        self._server = ServerThread(self, lifespan="off", name="fake-upstream")

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        self._stopping.clear()
        self._server.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends pending x-fake-delay-ms sleeps so shutdown is quick
        self._server.stop()

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def port(self) -> int:
        return self._server.port

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- recorded requests -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received since the last reset, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def last(self) -> RecordedRequest:
        with self._lock:
            if not self._requests:
                raise AssertionError("the fake upstream received no request")
            return self._requests[-1]

    def count(self, path_substring: str | None = None) -> int:
        with self._lock:
            if path_substring is None:
                return len(self._requests)
            return sum(1 for r in self._requests if path_substring in r.path)

    def reset(self) -> None:
        """Forget recorded requests and the fail-times counters."""
        with self._lock:
            self._requests.clear()
            self._fail_counts.clear()
            self._seq = 0

    def _record(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> RecordedRequest:
        with self._lock:
            self._seq += 1
            rec = RecordedRequest(self._seq, method, path, query, headers, body)
            self._requests.append(rec)
            return rec

    def _should_fail(self, key: str, times: int) -> bool:
        with self._lock:
            n = self._fail_counts.get(key, 0) + 1
            self._fail_counts[key] = n
            return n <= times

    # ---- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            try:
                value = raw_value.decode("utf-8")
            except UnicodeDecodeError:
                value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        method: str = scope["method"]
        path: str = scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        rec = self._record(method, path, query, headers, b"".join(chunks))

        disconnected = asyncio.Event()

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()

        watcher = asyncio.create_task(watch_disconnect())
        try:
            await self._handle(send, rec, disconnected)
        except ClientGone:
            return
        finally:
            watcher.cancel()

    async def _pause(self, seconds: float, disconnected: asyncio.Event) -> None:
        """Sleep, but stop early if the client went away or the server is stopping."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (remaining := deadline - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(disconnected.wait(), min(remaining, 0.05))
            if disconnected.is_set():
                raise ClientGone
            if self._stopping.is_set():
                raise UpstreamCut("fake upstream stopping")

    async def _handle(self, send: Send, rec: RecordedRequest, disconnected: asyncio.Event) -> None:
        try:
            ctl = _Controls.parse(rec.headers)
        except ValueError as exc:
            response = FakeResponse.json(
                error_body("openai", 400, f"fake upstream: bad x-fake-* header: {exc}"), 400
            )
            await self._send(send, response, rec, None, disconnected)
            return

        if ctl.delay_ms > 0:
            await self._pause(ctl.delay_ms / 1000, disconnected)

        handler, style = _route(rec.method, rec.path)
        status = ctl.status if ctl.status is not None and ctl.status >= 400 else None
        if ctl.fail_times is not None:
            status = (status or 500) if self._should_fail(ctl.fail_key, ctl.fail_times) else None

        if status is not None:
            message_text = f"fake upstream error {status}"
            response = FakeResponse.json(error_body(ctl.error_style or style, status, message_text), status)
        else:
            try:
                response = self._answer(handler, rec, ctl)
            except BadRequest as exc:
                response = FakeResponse.json(error_body(ctl.error_style or style, 400, str(exc)), 400)
        if ctl.retry_after is not None:
            response.headers.append(("retry-after", ctl.retry_after))
        if ctl.set_cookie is not None:
            response.headers.append(("set-cookie", ctl.set_cookie))
        await self._send(send, response, rec, ctl, disconnected)

    async def _send(
        self,
        send: Send,
        response: FakeResponse,
        rec: RecordedRequest,
        ctl: _Controls | None,
        disconnected: asyncio.Event,
    ) -> None:
        headers = [
            (b"content-type", response.content_type.encode()),
            (b"x-fake-seq", str(rec.seq).encode()),
            (b"x-request-id", f"req_fake{rec.seq}".encode()),
        ]
        headers += [(k.encode(), v.encode()) for k, v in response.headers]
        cut_after = ctl.cut_after if ctl is not None else None
        chunk_delay = (ctl.chunk_delay_ms if ctl is not None else 0) / 1000

        if response.events is None:
            if cut_after is None:
                headers.append((b"content-length", str(len(response.body)).encode()))
                await send({"type": "http.response.start", "status": response.status, "headers": headers})
                await send({"type": "http.response.body", "body": response.body})
                return
            # No content-length: chunked, so the client can tell the body was cut.
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            await send({"type": "http.response.body", "body": response.body[:cut_after], "more_body": True})
            raise UpstreamCut(f"cut after {cut_after} bytes")

        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        for i, event in enumerate(response.events):
            if cut_after is not None and i >= cut_after:
                raise UpstreamCut(f"cut after {cut_after} events")
            if i and chunk_delay:
                await self._pause(chunk_delay, disconnected)
            await send({"type": "http.response.body", "body": event, "more_body": True})
        if cut_after is not None:
            raise UpstreamCut(f"cut after {cut_after} events")
        await send({"type": "http.response.body", "body": b""})

    # ---- provider formats ------------------------------------------------------------------------

    def _answer(self, handler: str, rec: RecordedRequest, ctl: _Controls) -> FakeResponse:
        if handler == "echo":
            return FakeResponse.json(
                {
                    "method": rec.method,
                    "path": rec.path,
                    "query": rec.query,
                    "headers": rec.headers,
                    "body": rec.text,
                }
            )
        if handler == "binary":
            data = bytes(i % 256 for i in range(max(ctl.n_bytes, 0)))
            return FakeResponse(content_type="application/octet-stream", body=data)
        if handler == "openai_models":
            models = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
            return FakeResponse.json(
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 1700000000, "owned_by": "openai"}
                        for m in models
                    ],
                }
            )
        body = json_object(rec.body)
        if handler == "openai_chat":
            return openai_chat(rec, body, ctl.text)
        if handler == "openai_embeddings":
            return openai_embeddings(body)
        if handler == "openai_responses":
            return openai_responses(rec, body, ctl.text)
        if handler == "anthropic_messages":
            return anthropic_messages(rec, body, ctl.text)
        if handler == "anthropic_count_tokens":
            return FakeResponse.json(
                {"input_tokens": count_words(body.get("system")) + count_words(body.get("messages"))}
            )
        if handler == "google":
            return google_generate(rec, body, ctl.text)
        if handler == "workers_ai":
            return workers_ai_run(body, ctl.text)
        raise AssertionError(handler)


def upstream_overrides_for(url: str) -> dict[str, str]:
    """`Settings.upstream_overrides` pointing every provider slug at a fake upstream at `url`.

    Each base keeps the real provider's path shape (spec/providers.md), so the fake sees the same paths
    the real provider would.
    """
    url = url.rstrip("/")
    return {
        "workers_ai": f"{url}/client/v4/accounts/{{account_id}}/ai/run",
        "openai": f"{url}/v1",
        "azure_openai": f"{url}/openai/deployments/{{deployment}}",
        "anthropic": url,
        "google_ai_studio": url,
        "google_vertex_ai": url,
        "aws_bedrock": url,
        "mistral": url,
        "groq": f"{url}/openai/v1",
        "cohere": url,
        "perplexity_ai": url,
        "deepseek": url,
        "grok": f"{url}/v1",
        "cerebras": f"{url}/v1",
        "openrouter": f"{url}/api/v1",
        "huggingface": f"{url}/models",
        "replicate": f"{url}/v1",
        "elevenlabs": url,
        "cartesia": url,
        "fal": url,
    }
