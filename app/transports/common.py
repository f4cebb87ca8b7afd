"""What the HTTP and WebSocket transports share: id and header checks, the handshake's settings,
and refusing a WebSocket handshake."""

from __future__ import annotations

import re
from urllib.parse import quote

from starlette.types import Scope
from starlette.websockets import WebSocket

from app.core.errors import GatewayError, MalformedRequest
from app.pipeline.options import split_headers
from app.pipeline.types import Options
from app.transports.encode import http_error_response

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SUBPROTOCOL_PREFIX = "cf-aig-authorization."
_PATH_SAFE = "/:@!$&'()*+,;=~"


def sent_path(scope: Scope) -> str:
    """The request path as sent, percent-encoded (re-encoded from `path` if the server gives no
    `raw_path`)."""
    raw: bytes | None = scope.get("raw_path")
    if raw is None:
        return quote(scope["path"], safe=_PATH_SAFE)
    return raw.decode("utf-8", "replace")


def check_ids(account_id: str, gateway_id: str) -> None:
    if not _ID.match(account_id) or not _ID.match(gateway_id):
        raise MalformedRequest("Account and gateway ids must match ^[A-Za-z0-9_-]{1,64}$")


def header_pairs(scope: Scope) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]


def header(pairs: list[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in pairs if key == name), None)


def handshake_token(websocket: WebSocket) -> tuple[str | None, str | None]:
    """(token, subprotocol to select). Browsers cannot set headers, so a token may come as the
    subprotocol entry `cf-aig-authorization.<token>`; the handshake must then select that entry."""
    for entry in websocket.scope.get("subprotocols", []):
        if entry.startswith(SUBPROTOCOL_PREFIX) and len(entry) > len(SUBPROTOCOL_PREFIX):
            return entry[len(SUBPROTOCOL_PREFIX) :], entry
    return websocket.headers.get("cf-aig-authorization"), None


def handshake_settings(websocket: WebSocket) -> tuple[Options, list[tuple[str, str]], str | None]:
    """A handshake's session options (its `cf-aig-*` headers, a subprotocol token as the
    authorization), the other headers, and the subprotocol entry to select. Raises 2010 on a bad
    `cf-aig-*` value."""
    token, subprotocol = handshake_token(websocket)
    options, forward = split_headers(header_pairs(websocket.scope))
    if subprotocol is not None:
        options = Options(authorization=token).over(options)
    return options, forward, subprotocol


async def refuse(websocket: WebSocket, error: GatewayError) -> None:
    """Answer a handshake with the error as an HTTP response (a close, where that cannot be sent)."""
    try:
        await websocket.send_denial_response(http_error_response(error))
    except RuntimeError:  # the server cannot send a denial response: a close becomes a 403
        await websocket.close(code=1008)
