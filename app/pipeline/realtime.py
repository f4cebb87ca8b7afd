"""Realtime WebSocket-to-WebSocket relay (protocol.md §7): admit the session, open the provider's
socket, relay text and binary frames both ways unchanged, pass the close code on, and write one log
row per session (through the pipeline's `Recorder`, like every other request) with duration, frame
and byte counts, close code and the token usage the provider reports."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qs

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from app.core.errors import GatewayTimeout, NoProviderResponse, UpstreamRefused
from app.core.ids import new_log_id
from app.core.settings import Settings
from app.logs.record import LogRecord
from app.pipeline.admission import Admission
from app.pipeline.recording import Recorder, StepLog
from app.pipeline.spend import SpendGuard
from app.pipeline.types import Options
from app.providers.realtime import RealtimeProvider
from app.upstream.environment import ssl_context
from app.upstream.errors import HandshakeRefused, UpstreamTimeout, UpstreamUnreachable
from app.upstream.websocket import open_websocket

# Close codes that may be sent in a close frame; anything else is reported as 1011.
_SENDABLE = set(range(1000, 1004)) | set(range(1007, 1015)) | set(range(3000, 5000))


def sendable(code: int | None, fallback: int) -> int:
    return code if code in _SENDABLE else fallback


class ClientEnd(Protocol):
    """The client side of the relay, adapted from whatever server framework holds it."""

    async def receive(self) -> str | bytes | None:
        """The next frame, or None once the client has closed (then `close_code` is set)."""
        ...

    async def send(self, data: str | bytes) -> None: ...

    async def close(self, code: int) -> None: ...

    @property
    def close_code(self) -> int | None: ...


@dataclass(slots=True)
class Counters:
    frames_in: int = 0  # client → provider
    frames_out: int = 0  # provider → client
    bytes_in: int = 0
    bytes_out: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    usage_seen: bool = False
    close_code: int | None = None
    upstream_closed_first: bool = False
    errors: list[str] = field(default_factory=list)

    def absorb_usage(self, text: str) -> None:
        """Sum the usage of every `response.done` event (one per model response)."""
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        usage = event.get("response", {}).get("usage") if isinstance(event, dict) else None
        if isinstance(usage, dict):
            self.usage_seen = True
            self.tokens_in += int(usage.get("input_tokens") or 0)
            self.tokens_out += int(usage.get("output_tokens") or 0)


class RealtimeBridge:
    def __init__(
        self, settings: Settings, admission: Admission, recorder: Recorder, spend: SpendGuard | None = None
    ) -> None:
        self._settings = settings
        self._spend = spend
        self._admission = admission
        self._recorder = recorder
        self._tls = ssl_context()  # SSL_CERT_FILE / SSL_CERT_DIR or certifi, read once

    async def open(
        self,
        account_id: str,
        gateway_id: str,
        provider: RealtimeProvider,
        options: Options,
        headers: list[tuple[str, str]],
        offered_subprotocols: list[str],
        query_string: str,
        user_agent: str | None,
        trace_headers: dict[str, str] | None = None,
    ) -> RealtimeSession:
        """Admit the session (2009, 2001) and open the provider's socket (2012, 2005, or the
        provider's own refusal). Its span, when traces are exported, is parented by the
        handshake's `trace_headers` and covers the session from the provider's handshake on."""
        gateway = await self._admission.open_session(account_id, gateway_id, options.authorization)
        base = self._settings.upstream_override("realtime_" + provider.slug) or provider.url
        url = f"{base}?{query_string}" if query_string else base
        model = parse_qs(query_string).get("model", [None])[0]
        settle = None  # spend limits: refused before the provider is called (2045)
        if self._spend is not None:
            settle = await self._spend.admit_session(gateway, provider.slug, model, options.metadata)
        span = self._recorder.open_session_span(gateway.otel, trace_headers, url)
        upstream = await self._connect(provider, url, headers, offered_subprotocols)
        log_id = new_log_id()
        record = LogRecord(
            id=log_id, account_id=account_id, gateway_id=gateway_id, provider=provider.slug,
            path="realtime" + (f"?model={model}" if model else ""), request_type="realtime", step=0,
            event_id=log_id, connection_id=None, user_agent=user_agent, authenticated=True,
            metadata=options.metadata, custom_cost=None, model_in_path=False, keep_payload=False,
            body_limit=0,
        )  # fmt: skip
        record.model_override = model
        collect = options.collect_log if options.collect_log is not None else gateway.collect_logs
        log = self._recorder.begin_record(record, collect, span)
        log.on_finish = settle
        return RealtimeSession(upstream, log, span.traceparent if span is not None else None)

    async def _connect(
        self, provider: RealtimeProvider, url: str, headers: list[tuple[str, str]], subprotocols: list[str]
    ) -> ClientConnection:
        forwarded = [(n, v) for n, v in headers if n.lower() in provider.forwarded_headers]
        offered = [p for p in subprotocols if p.startswith(provider.forwarded_subprotocol_prefixes)]
        try:
            return await open_websocket(
                url,
                forwarded,
                offered,
                open_timeout_s=self._settings.connect_timeout_s,
                max_frame_bytes=self._settings.ws_max_frame_bytes,
                tls=self._tls,
            )
        except HandshakeRefused as refused:
            raise UpstreamRefused(refused.status, refused.body, refused.content_type) from None
        except UpstreamTimeout:
            raise GatewayTimeout("Realtime upstream did not answer the handshake in time") from None
        except UpstreamUnreachable as exc:
            raise NoProviderResponse(f"Realtime upstream unreachable: {exc}") from None


class RealtimeSession:
    """An admitted session with its provider socket open; `relay` runs it to the end."""

    def __init__(self, upstream: ClientConnection, log: StepLog, traceparent: str | None = None) -> None:
        self._upstream = upstream
        self._log = log
        self.traceparent = traceparent  # the session's span, for the handshake's answer

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the provider selected."""
        return self._upstream.subprotocol

    async def relay(self, client: ClientEnd) -> Counters:
        upstream, counters = self._upstream, Counters()
        to_upstream = asyncio.create_task(self._client_to_upstream(client, upstream, counters))
        to_client = asyncio.create_task(self._upstream_to_client(client, upstream, counters))
        try:
            await asyncio.wait((to_upstream, to_client), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (to_upstream, to_client):
                task.cancel()
            await asyncio.gather(to_upstream, to_client, return_exceptions=True)
            await self._close_both(client, upstream, counters)
            self._finish_log(counters)
        return counters

    async def _client_to_upstream(self, client: ClientEnd, upstream: ClientConnection, c: Counters) -> None:
        while (frame := await client.receive()) is not None:
            c.frames_in += 1
            c.bytes_in += len(frame)
            try:
                await upstream.send(frame)
            except ConnectionClosed:
                c.upstream_closed_first = True
                return

    async def _upstream_to_client(self, client: ClientEnd, upstream: ClientConnection, c: Counters) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in upstream:
                c.frames_out += 1
                c.bytes_out += len(frame)
                if isinstance(frame, str) and '"response.done"' in frame:
                    c.absorb_usage(frame)
                await client.send(frame)
        c.upstream_closed_first = True

    async def _close_both(self, client: ClientEnd, upstream: ClientConnection, c: Counters) -> None:
        if c.upstream_closed_first:
            code = upstream.close_code
            c.close_code = code
            with contextlib.suppress(Exception):
                await client.close(sendable(code, 1011))
        else:
            code = client.close_code
            c.close_code = code
            await upstream.close(sendable(code, 1000))

    def _finish_log(self, c: Counters) -> None:
        record = self._log.record
        record.request_size_override = c.bytes_in
        record.response_size = c.bytes_out
        record.frames_in, record.frames_out, record.close_code = c.frames_in, c.frames_out, c.close_code
        if c.usage_seen:
            record.tokens_in, record.tokens_out = c.tokens_in, c.tokens_out
        record.usage_known = True
        record.attempts = 1
        normal = c.close_code in (1000, 1001)
        self._log.finish(101, normal, None if normal else f"closed with code {c.close_code}")
