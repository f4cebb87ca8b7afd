"""SSE event splitting across chunks (app/core/sse.py)."""

from __future__ import annotations

from app.core.sse import SSESplitter


def test_sse_splitter_across_chunks() -> None:
    splitter = SSESplitter()
    assert splitter.feed(b'event: message_start\r\ndata: {"a"') == []
    events = splitter.feed(b": 1}\r\n\r\n: keep-alive\n\ndata: [DONE]\n\n")
    assert [(e.event, e.data) for e in events] == [("message_start", b'{"a": 1}'), (None, b"[DONE]")]
