"""Golden tests of the compat translators (app/providers/compat/{anthropic,google,workers_ai}.py):
OpenAI chat-completions requests → each provider's native request, and the providers' documented
response bodies and event streams → OpenAI `chat.completion` / `chat.completion.chunk`.

Streams are fed in odd-sized pieces (7 bytes by default) so events are split at arbitrary points;
every output object is validated with the official `openai` SDK's models.

Per-provider golden tests: test_compat_{anthropic,google,workers_ai}.py; here, what every translator
must survive (odd documents, invalid requests)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from app.core.errors import UnknownProvider
from app.providers.compat.base import CompatRequestError
from tests.support.compat import (
    CLAUDE,
    GEMINI,
    LLAMA,
    make,
    run_stream,
    sse,
)

# ==== robustness ===================================================================================

ODD_DOCUMENTS = [
    b"not json",
    b"[1, 2]",
    b'{"type": "message_start", "message": "oops"}',
    b'{"type": "content_block_start", "index": 0, "content_block": [1]}',
    b'{"type": "content_block_start", "index": 5, "content_block": {"type": "tool_use", "name": 1}}',
    b'{"type": "content_block_delta", "index": 5, "delta": {"type": "input_json_delta", "partial_json": 1}}',
    b'{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 1}}',
    b'{"type": "message_delta", "delta": null, "usage": {"output_tokens": "many"}}',
    b'{"candidates": [1, {"content": "x"}, {"content": {"parts": [null, {"functionCall": {"args": 5}}]}}]}',
    b'{"candidates": "none", "usageMetadata": [], "promptFeedback": 3}',
    b'{"response": {"json": true}, "tool_calls": [null, {"name": 3}, {"function": "f"}], "usage": 1}',
    b'{"choices": [{"delta": {"content": 5, "tool_calls": [1]}}]}',
    b'{"choices": "x", "usage": {"prompt_tokens": 2}}',
]


@pytest.mark.parametrize("model", [CLAUDE, GEMINI, LLAMA])
def test_streams_survive_odd_documents(model: str) -> None:
    raw = sse(*((None, doc.decode()) for doc in ODD_DOCUMENTS), ("message_start", "{"))
    chunks, _ = run_stream(
        make(model, stream=True, stream_options={"include_usage": True}), raw + b"data: {", 3
    )
    assert chunks[-1]["choices"] == [] and "usage" in chunks[-1]


@pytest.mark.parametrize("model", [CLAUDE, GEMINI, LLAMA])
@pytest.mark.parametrize("document", ODD_DOCUMENTS)
def test_responses_survive_odd_documents(model: str, document: bytes) -> None:
    out = orjson.loads(make(model).response(200, document))
    assert "choices" in out or "error" in out


# ==== invalid requests ==============================================================================

BAD_ARGUMENTS = {"name": "f", "arguments": "{oops"}


def _image_message(role: str, url: str) -> dict[str, Any]:
    return {"role": role, "content": [{"type": "image_url", "image_url": {"url": url}}]}


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (CLAUDE, {"messages": [_image_message("user", "ftp://x/y.png")]}),
        (CLAUDE, {"messages": [_image_message("user", "data:image/png,abc")]}),
        (CLAUDE, {"n": 2}),
        (CLAUDE, {"max_tokens": 0}),
        (CLAUDE, {"stop": 5}),
        (CLAUDE, {"tools": [{"type": "code_interpreter"}]}),
        (
            CLAUDE,
            {"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": BAD_ARGUMENTS}]}]},
        ),
        (CLAUDE, {"messages": [{"role": "tool", "content": "x"}]}),
        (CLAUDE, {"messages": [{"role": "wizard", "content": "x"}]}),
        (GEMINI, {"messages": [{"role": "tool", "tool_call_id": "unknown", "content": "x"}]}),
        (GEMINI, {"messages": [_image_message("system", "https://x/y.png")]}),
        ("google-ai-studio/../../v1/files", {}),
        (LLAMA, {"temperature": "hot"}),
        ("workers-ai/@cf/x?y=1", {}),
    ],
)
def test_invalid_requests_are_compat_errors(model: str, fields: dict[str, Any]) -> None:
    with pytest.raises(CompatRequestError):
        make(model, **fields)


def test_unknown_prefix_is_unknown_provider() -> None:
    with pytest.raises(UnknownProvider):
        make("nope/model")
