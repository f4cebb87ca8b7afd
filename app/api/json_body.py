"""Management API bodies are JSON whatever their `Content-Type` says.

curl sends `application/x-www-form-urlencoded` with `-d` unless told otherwise, and FastAPI reads
only `application/json` (or `+json`) bodies as JSON: every other type reached validation as raw
bytes and was refused with an obscure "Input should be a valid dictionary". The management API
takes no other body format, so for writes under /client/v4 the content type is rewritten to
`application/json` before FastAPI reads the body; a body that is not JSON then gets the usual
400 / 1001 "body: not valid JSON". The gateway paths already ignore the content type.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.envelope import MANAGEMENT_PREFIX

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_JSON = b"application/json"


def _is_json(value: bytes) -> bool:
    media_type = value.split(b";", 1)[0].strip().lower()
    return media_type == _JSON or (media_type.startswith(b"application/") and media_type.endswith(b"+json"))


class JSONBodies:
    """ASGI middleware: a management write's body is read as JSON, whatever its content type."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in _WRITES
            and scope["path"].startswith(MANAGEMENT_PREFIX)
        ):
            types = [v for n, v in scope["headers"] if n == b"content-type"]
            if len(types) != 1 or not _is_json(types[0]):  # none (FastAPI reads bytes), or another
                headers = [(n, v) for n, v in scope["headers"] if n != b"content-type"]
                scope = {**scope, "headers": [*headers, (b"content-type", _JSON)]}
        await self.app(scope, receive, send)
