"""Schemas shown on the OpenAPI page for bodies the gateway reads itself (it never lets the
framework re-parse a body it forwards)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class StepConfig(BaseModel):
    requestTimeout: int | None = Field(None, description="ms to the first byte of the upstream response")
    maxAttempts: int | None = Field(None, ge=1, le=5, description="attempts in all (1 = no retry)")
    retryDelay: int | None = Field(None, ge=0, le=5000, description="ms before a retry")
    backoff: Literal["constant", "linear", "exponential"] | None = None


class UniversalStep(BaseModel):
    provider: str = Field(description="provider slug (openai, anthropic, workers-ai, …) or custom-{slug}")
    endpoint: str = Field(description="path below the provider's base, e.g. chat/completions")
    headers: dict[str, str] = Field(
        default_factory=dict, description="headers sent upstream; cf-aig-* keys are settings for this step"
    )
    query: Any = Field(description="the JSON body exactly as the provider's API expects it")
    config: StepConfig | None = None
    authorization: str | None = Field(None, description="legacy upstream Authorization value")
    eventId: str | None = Field(None, description="client id echoed in metadata and logs")


class GatewayErrorItem(BaseModel):
    code: int = Field(description="2001 gateway not found … 2040 unknown stored-key alias (docs/errors.md)")
    message: str


class GatewayErrorBody(BaseModel):
    """What the gateway itself answers on an error (never a provider's error, which passes through)."""

    success: Literal[False] = False
    result: list[Any] = Field(default_factory=list)
    messages: list[str] = Field(default_factory=list)
    error: list[GatewayErrorItem]
