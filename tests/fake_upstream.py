"""A real HTTP server imitating AI providers, and a helper to run any ASGI app in a thread.

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

Every response carries `x-fake-seq` (1-based number of the request since the last reset) and
`x-request-id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_TEXT = "Hello from fake"
DEFAULT_BINARY_BYTES = 1024


# --------------------------------------------------------------------------------------------------
# ServerThread: any ASGI app on 127.0.0.1, in a background thread.
# --------------------------------------------------------------------------------------------------


class ServerThread:
    """Run an ASGI app with uvicorn on a free loopback port in a daemon thread.

    The listening socket is bound before the thread starts, so `.port`/`.url` are known at once and
    there is no race for the port. `start()` returns once uvicorn reports `started` (after the
    lifespan startup), and raises with the app's traceback if startup failed.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        lifespan: Literal["auto", "on", "off"] = "on",
        startup_timeout_s: float = 15.0,
        shutdown_timeout_s: float = 5.0,
        name: str = "asgi-server",
        **config_kwargs: Any,
    ) -> None:
        self.app = app
        self.host = host
        self.lifespan = lifespan
        self.startup_timeout_s = startup_timeout_s
        self.shutdown_timeout_s = shutdown_timeout_s
        self.name = name
        self.config_kwargs = config_kwargs
        self.port: int = 0
        self.server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._errors: list[str] = []

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}"

    async def _wrapped(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass-through that remembers why the lifespan startup failed, to report it from start()."""
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                self._errors.append(str(message.get("message", "")))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException:
            self._errors.append(traceback.format_exc())
            raise

    def start(self) -> ServerThread:
        if self._thread is not None:
            raise RuntimeError("server already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        options: dict[str, Any] = {
            "log_level": "warning",
            "log_config": None,  # leave logging to pytest; only set levels
            "access_log": False,
            "timeout_graceful_shutdown": 1,
            **self.config_kwargs,
        }
        config = uvicorn.Config(
            self._wrapped,
            host=self.host,
            port=self.port,
            lifespan=self.lifespan,
            interface="asgi3",
            **options,
        )
        server = uvicorn.Server(config)
        self.server = server

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException:
                self._errors.append(traceback.format_exc())
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name=f"{self.name}:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout_s
        while not server.started:
            if not self._thread.is_alive():
                detail = "\n".join(self._errors) or "see the uvicorn.error log"
                raise RuntimeError(f"{self.name} failed to start:\n{detail}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start within {self.startup_timeout_s} s")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        thread, server = self._thread, self.server
        if thread is None or server is None:
            return
        server.should_exit = True
        thread.join(self.shutdown_timeout_s)
        if thread.is_alive():
            server.force_exit = True
            thread.join(self.shutdown_timeout_s)
        self._thread = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------------
# Recorded requests and the mid-stream cut.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    seq: int
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    time: float = field(default_factory=time.monotonic)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def query_params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)


class _ClientGone(Exception):
    """The client disconnected while the fake was waiting; nothing more to send."""


class UpstreamCut(Exception):
    """Raised inside the response to make uvicorn drop the connection mid-body (x-fake-cut-after)."""


class _HideCuts(logging.Filter):
    """uvicorn logs every exception escaping an app; the deliberate cuts are not worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, UpstreamCut)


_uvicorn_error_logger = logging.getLogger("uvicorn.error")
if not any(isinstance(f, _HideCuts) for f in _uvicorn_error_logger.filters):
    _uvicorn_error_logger.addFilter(_HideCuts())


# --------------------------------------------------------------------------------------------------
# Helpers for the provider formats.
# --------------------------------------------------------------------------------------------------


def split_words(text: str) -> list[str]:
    """Split text into stream pieces, one per word, whose concatenation is exactly `text`.

    Each piece is a word with the whitespace that precedes it ("Hello", " from", " fake").
    """
    pieces = re.findall(r"\s*\S+", text)
    tail = text[len("".join(pieces)) :]
    if tail:
        if pieces:
            pieces[-1] += tail
        else:
            pieces.append(tail)
    return pieces


def count_words(value: Any) -> int:
    """Whitespace-separated words in every text of a provider request fragment.

    Understands plain strings, lists, OpenAI/Anthropic content parts (`{"type":"text","text":…}`),
    messages (`{"content": …}`) and Google contents (`{"parts": [{"text": …}]}`).
    """
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(count_words(v) for v in value)
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return len(value["text"].split())
        if "content" in value:
            return count_words(value["content"])
        if "parts" in value:
            return count_words(value["parts"])
    return 0


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _sse_data(obj: Any, newline: str = "\n") -> bytes:
    data = obj if isinstance(obj, str) else _dumps(obj)
    return f"data: {data}{newline}{newline}".encode()


def _sse_event(event: str, obj: Any) -> bytes:
    return f"event: {event}\ndata: {_dumps(obj)}\n\n".encode()


_OPENAI_ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}

_ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

_GOOGLE_ERROR_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_body(style: str, status: int, message: str) -> dict[str, Any]:
    """The JSON error body a provider of that style sends for `status`."""
    if style == "anthropic":
        kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    if style == "google":
        gstatus = _GOOGLE_ERROR_STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
        return {"error": {"code": status, "message": message, "status": gstatus}}
    if style == "workers_ai":
        return {
            "result": None,
            "success": False,
            "errors": [{"code": 3000 + status, "message": message}],
            "messages": [],
        }
    kind, code = _OPENAI_ERROR_TYPES.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


# --------------------------------------------------------------------------------------------------
# Responses.
# --------------------------------------------------------------------------------------------------


@dataclass
class _Response:
    status: int = 200
    content_type: str = "application/json"
    body: bytes = b""
    events: list[bytes] | None = None  # a stream: one body chunk per event
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, obj: Any, status: int = 200) -> _Response:
        return cls(status=status, body=_dumps(obj).encode())

    @classmethod
    def sse(cls, events: list[bytes]) -> _Response:
        return cls(content_type="text/event-stream", events=events, headers=[("cache-control", "no-cache")])


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
        )


_WORKERS_AI_RE = re.compile(r"^(?:/client/v4/accounts/(?P<acct>[^/]+))?/ai/run/(?P<model>.+)$")
_GOOGLE_RE = re.compile(r"/models/(?P<model>[^/:]+):(?P<action>generateContent|streamGenerateContent)$")
_ANTHROPIC_RE = re.compile(r"(?:^|/)v1/messages$")
_ANTHROPIC_COUNT_RE = re.compile(r"(?:^|/)v1/messages/count_tokens$")


def _route(method: str, path: str) -> tuple[str, str]:
    """(handler name, error style) for a request."""
    if method == "POST":
        if path.endswith("/chat/completions"):
            return "openai_chat", "openai"
        if path.endswith("/embeddings"):
            return "openai_embeddings", "openai"
        if _ANTHROPIC_COUNT_RE.search(path):
            return "anthropic_count_tokens", "anthropic"
        if _ANTHROPIC_RE.search(path):
            return "anthropic_messages", "anthropic"
        if _GOOGLE_RE.search(path):
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
        except _ClientGone:
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
                raise _ClientGone
            if self._stopping.is_set():
                raise UpstreamCut("fake upstream stopping")

    async def _handle(self, send: Send, rec: RecordedRequest, disconnected: asyncio.Event) -> None:
        try:
            ctl = _Controls.parse(rec.headers)
        except ValueError as exc:
            response = _Response.json(
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
            response = _Response.json(error_body(ctl.error_style or style, status, message_text), status)
        else:
            try:
                response = self._answer(handler, rec, ctl)
            except _BadRequest as exc:
                response = _Response.json(error_body(ctl.error_style or style, 400, str(exc)), 400)
        if ctl.retry_after is not None:
            response.headers.append(("retry-after", ctl.retry_after))
        await self._send(send, response, rec, ctl, disconnected)

    async def _send(
        self,
        send: Send,
        response: _Response,
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

    def _answer(self, handler: str, rec: RecordedRequest, ctl: _Controls) -> _Response:
        if handler == "echo":
            return _Response.json(
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
            return _Response(content_type="application/octet-stream", body=data)
        if handler == "openai_models":
            models = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
            return _Response.json(
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 1700000000, "owned_by": "openai"}
                        for m in models
                    ],
                }
            )
        body = _json_object(rec.body)
        if handler == "openai_chat":
            return _openai_chat(rec, body, ctl.text)
        if handler == "openai_embeddings":
            return _openai_embeddings(body)
        if handler == "anthropic_messages":
            return _anthropic_messages(rec, body, ctl.text)
        if handler == "anthropic_count_tokens":
            return _Response.json(
                {"input_tokens": count_words(body.get("system")) + count_words(body.get("messages"))}
            )
        if handler == "google":
            return _google(rec, body, ctl.text)
        if handler == "workers_ai":
            return _workers_ai(body, ctl.text)
        raise AssertionError(handler)


class _BadRequest(Exception):
    pass


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError as exc:
        raise _BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise _BadRequest("request body must be a JSON object")
    return value


def _openai_chat(rec: RecordedRequest, body: dict[str, Any], text: str) -> _Response:
    model = body.get("model", "fake-model")
    prompt_tokens = count_words(body.get("messages"))
    completion_tokens = len(text.split())
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    created = int(time.time())

    def head(obj_type: str) -> dict[str, Any]:
        return {"id": f"chatcmpl-fake{rec.seq}", "object": obj_type, "created": created, "model": model}

    if not body.get("stream"):
        message = {"role": "assistant", "content": text, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        return _Response.json(
            {**head("chat.completion"), "choices": [choice], "usage": usage, "system_fingerprint": "fp_fake"}
        )

    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))

    def chunk(delta: dict[str, Any], finish_reason: str | None) -> bytes:
        obj: dict[str, Any] = {
            **head("chat.completion.chunk"),
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include_usage:
            obj["usage"] = None
        return _sse_data(obj)

    events = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
    events += [chunk({"content": piece}, None) for piece in split_words(text)]
    events.append(chunk({}, "stop"))
    if include_usage:
        final = {
            **head("chat.completion.chunk"),
            "system_fingerprint": "fp_fake",
            "choices": [],
            "usage": usage,
        }
        events.append(_sse_data(final))
    events.append(_sse_data("[DONE]"))
    return _Response.sse(events)


def _openai_embeddings(body: dict[str, Any]) -> _Response:
    inputs = body.get("input", "")
    items = inputs if isinstance(inputs, list) and all(isinstance(i, str) for i in inputs) else [inputs]
    data = [
        {"object": "embedding", "index": i, "embedding": [round(0.001 * (i + 1) * k, 6) for k in range(8)]}
        for i in range(len(items))
    ]
    tokens = count_words(items)
    return _Response.json(
        {
            "object": "list",
            "data": data,
            "model": body.get("model", "fake-embedding"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _anthropic_messages(rec: RecordedRequest, body: dict[str, Any], text: str) -> _Response:
    model = body.get("model", "fake-model")
    input_tokens = count_words(body.get("system")) + count_words(body.get("messages"))
    output_tokens = len(text.split())
    msg_id = f"msg_fake{rec.seq}"
    if not body.get("stream"):
        return _Response.json(
            {
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
            }
        )
    start = {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
    }
    events = [
        _sse_event("message_start", {"type": "message_start", "message": start}),
        _sse_event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        _sse_event("ping", {"type": "ping"}),
    ]
    events += [
        _sse_event(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
        )
        for piece in split_words(text)
    ]
    events += [
        _sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _sse_event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        ),
        _sse_event("message_stop", {"type": "message_stop"}),
    ]
    return _Response.sse(events)


def _google(rec: RecordedRequest, body: dict[str, Any], text: str) -> _Response:
    match = _GOOGLE_RE.search(rec.path)
    assert match is not None
    model, action = match.group("model"), match.group("action")
    prompt_tokens = count_words(body.get("systemInstruction")) + count_words(body.get("contents"))
    response_id = f"fakeResponse{rec.seq}"

    def candidate(piece: str, finished: bool, completion_tokens: int) -> dict[str, Any]:
        cand: dict[str, Any] = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
        if finished:
            cand["finishReason"] = "STOP"
        return {
            "candidates": [cand],
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": completion_tokens,
                "totalTokenCount": prompt_tokens + completion_tokens,
            },
            "modelVersion": model,
            "responseId": response_id,
        }

    if action == "generateContent":
        return _Response.json(candidate(text, True, len(text.split())))

    pieces = split_words(text) or [""]
    chunks, so_far = [], 0
    for i, piece in enumerate(pieces):
        so_far += len(piece.split())
        chunks.append(candidate(piece, i == len(pieces) - 1, so_far))
    if "sse" in parse_qs(rec.query).get("alt", []):
        # Google terminates SSE events with CRLF pairs and sends no [DONE].
        return _Response.sse([_sse_data(c, "\r\n") for c in chunks])
    # Without alt=sse the stream is one JSON array, sent element by element.
    parts = [("[" if i == 0 else ",\r\n") + json.dumps(c, indent=2) + "\n" for i, c in enumerate(chunks)]
    parts.append("]")
    return _Response(content_type="application/json", events=[p.encode() for p in parts])


def _workers_ai(body: dict[str, Any], text: str) -> _Response:
    prompt_tokens = count_words(body.get("prompt")) + count_words(body.get("messages"))
    completion_tokens = len(text.split())
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if not body.get("stream"):
        return _Response.json(
            {
                "result": {"response": text, "tool_calls": [], "usage": usage},
                "success": True,
                "errors": [],
                "messages": [],
            }
        )
    events = [_sse_data({"response": piece, "p": "abcdefghijklmnop"}) for piece in split_words(text)]
    events.append(_sse_data({"response": "", "usage": usage}))
    events.append(_sse_data("[DONE]"))
    return _Response.sse(events)


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
