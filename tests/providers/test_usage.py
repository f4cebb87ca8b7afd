"""Token usage and model names read from every provider format (app/providers/usage.py)."""

from __future__ import annotations

from app.providers.usage import model_from_request, usage_from_body


def test_usage_every_format() -> None:
    openai = usage_from_body(b'{"usage": {"prompt_tokens": 3, "completion_tokens": 4}}')
    anthropic = usage_from_body(b'{"usage": {"input_tokens": 5, "output_tokens": 6}}')
    workers = usage_from_body(
        b'{"result": {"response": "x", "usage": {"prompt_tokens": 7, "completion_tokens": 8}}}'
    )
    google = usage_from_body(b'{"usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 10}}')
    assert [(u.tokens_in, u.tokens_out) for u in (openai, anthropic, workers, google)] == [
        (3, 4), (5, 6), (7, 8), (9, 10)
    ]  # fmt: skip


def test_model_sources() -> None:
    assert model_from_request(b'{"model": "gpt-4o"}', "chat/completions", False) == "gpt-4o"
    assert (
        model_from_request(b"{}", "@cf/meta/llama-3.1-8b-instruct", True) == "@cf/meta/llama-3.1-8b-instruct"
    )
    assert (
        model_from_request(b"{}", "v1beta/models/gemini-2.0-flash:generateContent", True)
        == "gemini-2.0-flash"
    )
