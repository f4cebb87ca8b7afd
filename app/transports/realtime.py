"""Realtime WebSocket pass-through `GET /v1/{account}/{gateway}/{provider}` (protocol.md §7): adapt
the server's WebSocket to the relay's ClientEnd and hand it to the pipeline's RealtimeBridge."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from app.core.errors import GatewayError, MalformedRequest
from app.pipeline.realtime import RealtimeBridge
from app.pipeline.tracing import trace_headers
from app.providers.realtime import get_realtime_provider
from app.transports.common import SUBPROTOCOL_PREFIX, check_ids, handshake_settings, header_pairs, refuse

router = APIRouter()


class StarletteClientEnd:
    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket
        self._close_code: int | None = None

    async def receive(self) -> str | bytes | None:
        message = await self._ws.receive()
        if message["type"] == "websocket.disconnect":
            self._close_code = message.get("code", 1005)
            return None
        text = message.get("text")
        return text if text is not None else bytes(message.get("bytes") or b"")

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            await self._ws.send_text(data)
        else:
            await self._ws.send_bytes(data)

    async def close(self, code: int) -> None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):  # the client closed first
            await self._ws.close(code=code)

    @property
    def close_code(self) -> int | None:
        return self._close_code


@router.websocket("/v1/{account_id}/{gateway_id}/{provider}")
@router.websocket("/v1/{account_id}/{gateway_id}/{provider}/{suffix:path}")
async def realtime_session(
    websocket: WebSocket, account_id: str, gateway_id: str, provider: str, suffix: str = ""
) -> None:
    bridge: RealtimeBridge = websocket.app.state.realtime
    offered = [p for p in websocket.scope.get("subprotocols", []) if not p.startswith(SUBPROTOCOL_PREFIX)]
    try:
        check_ids(account_id, gateway_id)
        upstream_provider = get_realtime_provider(provider)
        if suffix and not upstream_provider.accepts_path(suffix):
            raise MalformedRequest(
                f"No realtime session at /{provider}/{suffix[:64]}: connect to "
                f"/v1/{{account}}/{{gateway}}/{provider}"
                + "".join(f" or …/{provider}/{path}" for path in upstream_provider.sdk_paths)
            )
        options, forward, own_subprotocol = handshake_settings(websocket)
        session = await bridge.open(
            account_id, gateway_id, upstream_provider, options, forward, offered,
            websocket.scope["query_string"].decode("latin-1"), websocket.headers.get("user-agent"),
            trace_headers(header_pairs(websocket.scope)),
        )  # fmt: skip
    except GatewayError as error:  # a provider's own refusal passes through as it is
        await refuse(websocket, error)
        return
    # A browser drops a connection whose offered subprotocol is not selected: select what the
    # provider selected, else the entry that carried our token.
    # The session's span, like an HTTP response's (`traceparent`), so a client can link to it.
    headers = [(b"traceparent", session.traceparent.encode())] if session.traceparent else None
    await websocket.accept(subprotocol=session.subprotocol or own_subprotocol, headers=headers)
    await session.relay(StarletteClientEnd(websocket))


@router.websocket("/v1/{path:path}")
async def no_such_session(websocket: WebSocket, path: str) -> None:
    """After every other `/v1` WebSocket route: a handshake on any other path gets the error body
    and a message (Starlette's default is a bare 403)."""
    await refuse(
        websocket,
        MalformedRequest(
            "No WebSocket endpoint at this path: the universal session is /v1/{account}/{gateway}, "
            "a realtime session /v1/{account}/{gateway}/{provider} (OpenAI's SDK: …/openai/realtime)"
        ),
    )
