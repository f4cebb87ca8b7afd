"""The universal WebSocket session (protocol.md §6): one connection, many requests, each run
through the same pipeline as HTTP. This module only frames: JSON in, `universal.*` frames out.

Memory stays bounded for a client that stops reading: frames are sent one at a time under a lock,
so a producer (and with it its upstream read) waits while the socket is not writable.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any
from uuid import uuid4

import orjson
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from app.core.errors import (
    GatewayError,
    InternalError,
    MalformedRequest,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
)
from app.core.settings import Settings
from app.core.sse import SSEEvent, SSESplitter
from app.pipeline.run import Pipeline
from app.pipeline.step import assign_ids
from app.pipeline.tracing import trace_headers
from app.pipeline.types import GatewayRequest, GatewayResult, Options
from app.pipeline.universal import first_event_id, steps_from_universal
from app.transports.common import check_ids, handshake_settings, header_pairs, refuse
from app.transports.encode import ws_error_frame, ws_frame, ws_stream_failed_frame

router = APIRouter()
logger = logging.getLogger("aigw.ws")


@router.websocket("/v1/{account_id}/{gateway_id}")
@router.websocket("/v1/{account_id}/{gateway_id}/")
async def universal_session(websocket: WebSocket, account_id: str, gateway_id: str) -> None:
    pipeline: Pipeline = websocket.app.state.pipeline
    try:
        check_ids(account_id, gateway_id)
        options, _, subprotocol = handshake_settings(websocket)
        await pipeline.admission.open_session(account_id, gateway_id, options.authorization)
    except GatewayError as error:
        await refuse(websocket, error)
        return
    registry: SessionRegistry = websocket.app.state.ws_sessions
    if registry.draining:
        await refuse(websocket, ServiceUnavailable("Server is shutting down"))
        return
    await websocket.accept(subprotocol=subprotocol)
    session = Session(websocket, pipeline, websocket.app.state.settings, account_id, gateway_id, options)
    registry.add(session)
    try:
        await session.serve()
    finally:
        registry.discard(session)


class SessionRegistry:
    """Open sessions of this process, so a shutdown can let their requests finish first."""

    def __init__(self) -> None:
        self._sessions: set[Session] = set()
        self.draining = False

    def add(self, session: Session) -> None:
        self._sessions.add(session)

    def discard(self, session: Session) -> None:
        self._sessions.discard(session)

    def __len__(self) -> int:
        return len(self._sessions)

    async def drain(self, grace_s: float) -> None:
        """Refuse new sessions and requests, let in-flight ones finish (up to `grace_s`), then
        close every socket with 1001 (going away)."""
        self.draining = True
        sessions = list(self._sessions)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await asyncio.gather(*(session.finish_in_flight() for session in sessions))
        await asyncio.gather(*(session.close(1001) for session in sessions), return_exceptions=True)


def _json_or_string(raw: bytes) -> bytes:
    """Upstream JSON spliced into the frame as it is (no re-serialising); anything else as a string."""
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return orjson.dumps(raw.decode("utf-8", "replace"))
    return raw


def result_metadata(result: GatewayResult) -> dict[str, Any]:
    meta = result.meta
    return {
        "cacheStatus": meta.cache_status,
        "eventId": meta.event_id,
        "logId": meta.log_id,
        "step": str(meta.step),
        "contentType": meta.content_type,
        "status": meta.status,
    }


class Session:
    def __init__(
        self,
        websocket: WebSocket,
        pipeline: Pipeline,
        settings: Settings,
        account_id: str,
        gateway_id: str,
        defaults: Options,
    ) -> None:
        self._ws = websocket
        self._pipeline = pipeline
        self._settings = settings
        self._account_id = account_id
        self._gateway_id = gateway_id
        self._defaults = defaults
        self._user_agent = websocket.headers.get("user-agent")
        self._trace_headers = trace_headers(header_pairs(websocket.scope))  # the handshake's parent
        self.connection_id = str(uuid4())
        self._send_lock = asyncio.Lock()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._metadata: dict[str, dict[str, Any]] = {}  # per event, for its cancelled frame
        self._late_frames: set[asyncio.Task[None]] = set()
        self._draining = False
        self._closed = False
        self._last_activity = asyncio.get_running_loop().time()
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_close: asyncio.Future[None] | None = None  # held so the closing task is not collected

    async def finish_in_flight(self) -> None:
        self._draining = True
        while self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        while self._late_frames:  # cancelled frames still being sent
            await asyncio.gather(*self._late_frames, return_exceptions=True)

    async def close(self, code: int) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                await self._ws.close(code=code)

    async def serve(self) -> None:
        try:
            await self._read_frames()
        finally:
            self._closed = True
            for task in list(self._in_flight.values()):
                task.cancel()
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    async def _send(self, frame: bytes) -> None:
        """One frame at a time; the direct send (no writer task in between) saves a hop per frame."""
        if self._closed:
            return
        async with self._send_lock:
            try:
                await self._ws.send({"type": "websocket.send", "text": frame.decode()})
            except (WebSocketDisconnect, RuntimeError, OSError):
                self._closed = True

    async def _read_frames(self) -> None:
        loop = asyncio.get_running_loop()
        self._arm_idle_check(self._last_activity)
        try:
            while True:
                message = await self._ws.receive()
                self._last_activity = loop.time()  # the idle check looks at it lazily
                if message["type"] == "websocket.disconnect":
                    self._closed = True
                    return
                if message.get("text") is None:
                    await self._refuse_binary(message.get("bytes") or b"")
                    continue
                await self._handle(message["text"].encode())
        finally:
            if self._idle_timer is not None:
                self._idle_timer.cancel()

    # The idle clock runs only while nothing is in flight, from the last activity (a frame in, a
    # request finished). One timer, re-armed when it fires rather than on every frame: a busy
    # session pays a float assignment per frame, not a timer.
    def _arm_idle_check(self, since: float) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = asyncio.get_running_loop().call_at(
            since + self._settings.ws_idle_timeout_s, self._idle_check
        )

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self._closed:
            return
        now = asyncio.get_running_loop().time()
        if self._in_flight:
            self._arm_idle_check(now)  # re-armed from its end when the last request finishes
        elif now - self._last_activity >= self._settings.ws_idle_timeout_s:
            self._idle_close = asyncio.ensure_future(self.close(1000))
        else:
            self._arm_idle_check(self._last_activity)

    async def _refuse_binary(self, data: bytes) -> None:
        """Requests are JSON text frames (protocol.md §6); a binary one is answered, not run."""
        if len(data) > self._settings.ws_max_frame_bytes:
            await self._send_error(PayloadTooLarge("Frame too large"), None)
            return
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            frame = None
        event_id = first_event_id(frame.get("request")) if isinstance(frame, dict) else None
        await self._send_error(MalformedRequest("Requests are JSON text frames, not binary"), event_id)

    async def _handle(self, data: bytes) -> None:
        if len(data) > self._settings.ws_max_frame_bytes:
            await self._send_error(PayloadTooLarge("Frame too large"), None)
            return
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            await self._send_error(MalformedRequest("Frame is not valid JSON"), None)
            return
        if not isinstance(frame, dict):
            await self._send_error(MalformedRequest("Frame must be a JSON object"), None)
            return
        kind = frame.get("type")
        if kind == "universal.create":
            await self._create(frame.get("request"))
        elif kind == "universal.cancel":
            await self._cancel(frame.get("eventId"))
        else:
            event_id = first_event_id(frame.get("request"))
            await self._send_error(MalformedRequest(f"Unknown frame type: {str(kind)[:64]}"), event_id)

    async def _create(self, payload: Any) -> None:
        written_id = first_event_id(payload)
        if payload is None:
            await self._send_error(MalformedRequest("'request' is required"), written_id)
            return
        try:
            steps = steps_from_universal(payload)
        except GatewayError as error:
            await self._send_error(error, written_id)
            return
        request = GatewayRequest(
            self._account_id, self._gateway_id, "websocket", steps, self._defaults,
            user_agent=self._user_agent, connection_id=self.connection_id,
            request_content_type="application/json", authenticated=True,
            trace_headers=self._trace_headers,
        )  # fmt: skip
        _, event_id = assign_ids(request)  # the id every frame will carry
        refusal: GatewayError | None = None
        if event_id in self._in_flight:
            refusal = MalformedRequest(f"eventId {event_id} is already in flight")
        elif self._draining:
            refusal = ServiceUnavailable("Server is shutting down")
        elif len(self._in_flight) >= self._settings.ws_max_in_flight:
            refusal = RateLimited("Too many requests in flight on this connection")
        if refusal is not None:
            await self._send_error(refusal, event_id)
            return
        task = asyncio.create_task(self._run(event_id, request))
        self._in_flight[event_id] = task
        self._metadata[event_id] = {"eventId": event_id}
        task.add_done_callback(functools.partial(self._finished, event_id))

    def _finished(self, event_id: str, task: asyncio.Task[None]) -> None:
        """Every request ends with a terminal frame; a cancelled one (even before it started)
        gets `universal.done` with `cancelled: true`."""
        self._in_flight.pop(event_id, None)
        metadata = self._metadata.pop(event_id, {"eventId": event_id})
        self._last_activity = asyncio.get_running_loop().time()
        if not self._in_flight and not self._closed:
            self._arm_idle_check(self._last_activity)
        if task.cancelled() and not self._closed:
            frame = ws_frame("universal.done", {**metadata, "cancelled": True})
            late = asyncio.ensure_future(self._send(frame))  # a callback cannot await the send
            self._late_frames.add(late)
            late.add_done_callback(self._late_frames.discard)

    async def _cancel(self, event_id: Any) -> None:
        task = self._in_flight.get(event_id) if isinstance(event_id, str) else None
        if task is None:
            error = MalformedRequest("No request in flight with that eventId")
            await self._send_error(error, event_id if isinstance(event_id, str) else None)
            return
        task.cancel()

    async def _run(self, event_id: str, request: GatewayRequest) -> None:
        try:
            result = await self._pipeline.run(request)
            metadata = self._metadata[event_id] = result_metadata(result)
            if request.log_id:  # `cf-aig-request-id` over HTTP: the request's first row
                metadata["requestId"] = request.log_id
            if result.stream is None:
                await self._send(ws_frame("universal.created", metadata, _json_or_string(result.body or b"")))
            else:
                await self._relay(result, metadata)
        except GatewayError as error:
            await self._send(ws_error_frame(error, event_id, request.log_id))
        except Exception:
            logger.exception("websocket request %s failed", event_id)
            await self._send_error(InternalError(), event_id)

    async def _relay(self, result: GatewayResult, metadata: dict[str, Any]) -> None:
        assert result.stream is not None
        event_only = {"eventId": metadata["eventId"]}
        splitter = SSESplitter()
        try:
            await self._send(ws_frame("universal.created", metadata))
            try:
                async for chunk in result.stream:
                    for event in splitter.feed(chunk):
                        await self._send_event(event, event_only)
                for event in splitter.close():
                    await self._send_event(event, event_only)
            except GatewayError as error:
                await self._send(ws_stream_failed_frame(error, metadata))
                return
            await self._send(ws_frame("universal.done", metadata))
        finally:
            await result.stream.aclose()

    async def _send_event(self, event: SSEEvent, metadata: dict[str, Any]) -> None:
        if not event.data or event.data == b"[DONE]":
            return
        await self._send(ws_frame("universal.stream", metadata, _json_or_string(event.data)))

    async def _send_error(self, error: GatewayError, event_id: str | None) -> None:
        await self._send(ws_error_frame(error, event_id))
