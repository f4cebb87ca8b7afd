"""Provider upstream URLs (app/providers/catalog.py)."""

from __future__ import annotations

import pytest

from app.core.errors import UnknownProvider
from app.providers.catalog import get_provider


def test_provider_urls() -> None:
    assert get_provider("openai").upstream_url("v1/chat/completions", "a", None) == (
        "https://api.openai.com/v1/chat/completions"
    )
    assert get_provider("workers-ai").upstream_url("@cf/m", "acc", None) == (
        "https://api.cloudflare.com/client/v4/accounts/acc/ai/run/@cf/m"
    )
    assert get_provider("azure-openai").upstream_url("res/dep/chat/completions?api-version=1", "a", None) == (
        "https://res.openai.azure.com/openai/deployments/dep/chat/completions?api-version=1"
    )
    assert get_provider("aws-bedrock").upstream_url(
        "bedrock-runtime/us-east-1/model/x/invoke", "a", None
    ) == ("https://bedrock-runtime.us-east-1.amazonaws.com/model/x/invoke")
    assert (
        get_provider("openai").upstream_url("chat/completions", "a", "http://h/v1")
        == "http://h/v1/chat/completions"
    )
    with pytest.raises(UnknownProvider):
        get_provider("nope")
