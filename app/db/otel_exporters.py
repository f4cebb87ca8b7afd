"""A gateway's OpenTelemetry exporters (the `otel` field, as the `cloudflare` SDK sends it): the
API's input and output shapes, and the frozen form the request path reads.

`authorization` is write-only: the API shows its first and last 3 characters, and a PUT that sends
that preview back unchanged keeps the stored value (a client that GETs and PUTs a gateway whole
must not overwrite the secret with its preview)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from app.db.custom_providers import check_base_url

ContentType = Literal["json", "protobuf"]
MAX_EXPORTERS = 5


class OtelExporterInput(BaseModel):
    url: str = Field(max_length=2048)
    headers: dict[str, str] = Field(default_factory=dict, max_length=32)
    authorization: str | None = Field(default=None, max_length=4096)
    content_type: ContentType = "json"

    @field_validator("url")
    @classmethod
    def _url_form(cls, value: str) -> str:
        # The https and address rules depend on a setting: the router applies them (api/gateways.py).
        return check_base_url(value, allow_private=True)

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not name or not name.isascii() or any(c in name for c in " :\r\n\t") or len(name) > 256:
                raise ValueError(f"{name[:64]!r} is not a header name")
            if any(c in text for c in "\r\n\0") or len(text) > 4096:
                raise ValueError(f"the value of {name[:64]!r} is not a header value")
        return value


def preview(secret: str) -> str:
    return f"{secret[:3]}…{secret[-3:]}" if len(secret) > 6 else "…"


class OtelExporterPublic(BaseModel):
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    authorization: str | None = None
    content_type: ContentType = "json"

    @field_validator("authorization")
    @classmethod
    def _previewed(cls, value: str | None) -> str | None:
        return None if value is None else preview(value)


def keep_stored_authorizations(
    sent: list[dict[str, Any]] | None, stored: list[dict[str, Any]] | None
) -> list[dict[str, Any]] | None:
    """`sent` with each preview of a stored authorization (same URL) replaced by the stored value."""
    if not sent or not stored:
        return sent
    secrets = {
        (e.get("url"), preview(e["authorization"])): e["authorization"]
        for e in stored
        if e.get("authorization")
    }
    kept = []
    for exporter in sent:
        key = (exporter.get("url"), exporter.get("authorization"))
        kept.append({**exporter, "authorization": secrets[key]} if key in secrets else exporter)
    return kept


@dataclass(frozen=True, slots=True)
class ExporterConfig:
    """One OTLP/HTTP destination. `tenant`: configured by a gateway's owner, so the destination rules
    apply when connecting; the operator's (OTEL_* variables) may use any address."""

    url: str
    headers: tuple[tuple[str, str], ...]
    content_type: ContentType
    tenant: bool = True


def exporter_configs(stored: list[dict[str, Any]] | None) -> tuple[ExporterConfig, ...]:
    """The request path's form of a gateway row's `otel` column."""
    configs = []
    for exporter in stored or ():
        headers = [(str(k), str(v)) for k, v in (exporter.get("headers") or {}).items()]
        if exporter.get("authorization"):
            headers = [(k, v) for k, v in headers if k.lower() != "authorization"]
            headers.append(("Authorization", str(exporter["authorization"])))
        content_type: ContentType = "protobuf" if exporter.get("content_type") == "protobuf" else "json"
        configs.append(ExporterConfig(str(exporter["url"]), tuple(headers), content_type))
    return tuple(configs)
