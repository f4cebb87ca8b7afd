"""A gateway's OpenTelemetry exporters (the `otel` field, as the `cloudflare` SDK sends it): the
API's input and output shapes, and the frozen form the request path reads.

`authorization` is write-only: the API shows its first and last 3 characters, and a PUT that sends
that preview back unchanged keeps the stored value (a client that GETs and PUTs a gateway whole
must not overwrite the secret with its preview).

At rest, header values and `authorization` are encrypted with the server key, as stored provider
keys are (app/auth/secretbox.py), each bound to its gateway and header name: the column keeps its
JSON shape, with `{"sealed": "<base64>"}` in place of each value (`seal_exporters`). Rows written
before that hold plain strings, which are read as they are and sealed on the next write
(`open_exporters`)."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from app.auth.secretbox import SecretBox, SecretKeyMissing, SecretUndecryptable
from app.db.custom_providers import check_base_url

logger = logging.getLogger("aigw.otel")

ContentType = Literal["json", "protobuf"]
MAX_EXPORTERS = 5


class OtelExporterInput(BaseModel):
    url: str = Field(max_length=2048)
    headers: dict[str, str] = Field(default_factory=dict, max_length=32)
    authorization: str | None = Field(default=None, max_length=4096)
    content_type: ContentType = "json"

    @field_validator("authorization")
    @classmethod
    def _header_value(cls, value: str | None) -> str | None:
        if value is not None and any(c in value for c in "\r\n\0"):
            raise ValueError("is not a header value")
        return value

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
    """As the API shows an exporter (after `open_exporters`). A value still sealed (a reader
    without the server key, such as `aigw gateways list`) shows as `…`."""

    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    authorization: str | None = None
    content_type: ContentType = "json"

    @field_validator("headers", mode="before")
    @classmethod
    def _sealed_hidden(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: "…" if isinstance(v, dict) else v for k, v in value.items()}
        return value

    @field_validator("authorization", mode="before")
    @classmethod
    def _previewed(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return "…"
        return None if value is None else preview(str(value))


def _context(account_id: str, gateway_id: str, name: str) -> str:
    """Associated data binding a sealed value to its gateway and header."""
    return f"gateways/{account_id}/{gateway_id}/otel/{name.lower()}"


def seal_exporters(
    exporters: list[dict[str, Any]] | None, box: SecretBox | None, account_id: str, gateway_id: str
) -> list[dict[str, Any]] | None:
    """The stored form of plain exporters: every header value and `authorization` encrypted.
    Raises SecretKeyMissing when there is one to store and the server has no key."""
    if not exporters:
        return exporters

    def seal(name: str, value: str) -> dict[str, str]:
        if box is None or not box.enabled:
            raise SecretKeyMissing("AIGW_SECRET_KEY is not set")
        blob = box.encrypt(value, _context(account_id, gateway_id, name))
        return {"sealed": base64.b64encode(blob).decode()}

    stored = []
    for exporter in exporters:
        headers = exporter.get("headers") or {}
        sealed = {**exporter, "headers": {k: seal(k, str(v)) for k, v in headers.items()}}
        if exporter.get("authorization"):
            sealed["authorization"] = seal("authorization", str(exporter["authorization"]))
        stored.append(sealed)
    return stored


def open_exporters(
    stored: list[dict[str, Any]] | None, box: SecretBox | None, account_id: str, gateway_id: str
) -> list[dict[str, Any]] | None:
    """Plain exporters from the stored form (plain values of older rows as they are). An exporter
    with a value that cannot be decrypted (no or another server key) is kept with that value
    left out and `unreadable` set, and logged."""
    if not stored:
        return stored

    def unseal(name: str, value: Any) -> str | None:
        if not isinstance(value, dict):
            return None if value is None else str(value)
        try:
            if box is None:
                raise SecretKeyMissing("AIGW_SECRET_KEY is not set")
            blob = base64.b64decode(str(value.get("sealed", "")))
            return box.decrypt(blob, _context(account_id, gateway_id, name))
        except (SecretKeyMissing, SecretUndecryptable, ValueError) as exc:
            logger.error("an OTel exporter %s of gateway %s cannot be decrypted: %s", name, gateway_id, exc)
            return None

    opened = []
    for exporter in stored:
        plain = {**exporter, "headers": {}}
        for name, value in (exporter.get("headers") or {}).items():
            text = unseal(name, value)
            if text is None:
                plain["unreadable"] = True
            else:
                plain["headers"][name] = text
        if exporter.get("authorization") is not None:
            plain["authorization"] = unseal("authorization", exporter["authorization"])
            if plain["authorization"] is None:
                plain["unreadable"] = True
        opened.append(plain)
    return opened


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


def exporter_configs(opened: list[dict[str, Any]] | None) -> tuple[ExporterConfig, ...]:
    """The request path's form of a gateway's exporters (`open_exporters`). One with a secret that
    could not be decrypted is left out: sent without it, its spans would only be refused."""
    configs = []
    for exporter in opened or ():
        if exporter.get("unreadable"):
            continue
        headers = [(str(k), str(v)) for k, v in (exporter.get("headers") or {}).items()]
        if exporter.get("authorization"):
            headers = [(k, v) for k, v in headers if k.lower() != "authorization"]
            headers.append(("Authorization", str(exporter["authorization"])))
        content_type: ContentType = "protobuf" if exporter.get("content_type") == "protobuf" else "json"
        configs.append(ExporterConfig(str(exporter["url"]), tuple(headers), content_type))
    return tuple(configs)
