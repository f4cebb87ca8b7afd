"""A minimal, fast fake OpenAI upstream for benchmarks (raw ASGI, fixed answers), so that the
numbers measure the gateway and not the fake. Run: uvicorn bench.upstream_app:app --port N.

Streams (`"stream": true` in the body): `x-bench-chunk-gap-ms: G` sleeps G ms before each event,
`x-bench-chunks: N` sends N content events (default 5) before the usage event and [DONE]."""

from __future__ import annotations

import asyncio
import json
from typing import Any

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the bench"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
    }
).encode()


def _chunk(content: str) -> bytes:
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}  # fmt: skip
    return b"data: " + json.dumps(body).encode() + b"\n\n"


STREAM_EVENTS = [_chunk(word + " ") for word in ["Hello", "from", "the", "bench", "stream"]]
USAGE_EVENT = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","choices":[],'
    b'"usage":{"prompt_tokens":5,"completion_tokens":5,"total_tokens":10}}\n\n'
)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if b'"stream":true' in body.replace(b" ", b""):
        headers = dict(scope["headers"])
        gap = float(headers.get(b"x-bench-chunk-gap-ms", b"0")) / 1000
        count = int(headers.get(b"x-bench-chunks", b"0")) or len(STREAM_EVENTS)
        content = [STREAM_EVENTS[i % len(STREAM_EVENTS)] for i in range(count)]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})  # fmt: skip
        for event in [*content, USAGE_EVENT, b"data: [DONE]\n\n"]:
            if gap:
                await asyncio.sleep(gap)
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(COMPLETION)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": COMPLETION})
