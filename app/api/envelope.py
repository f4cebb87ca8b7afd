"""The Cloudflare v4 envelope for the management API, and its error handlers.

Success: `{"success": true, "errors": [], "messages": [], "result": …}` (plus `result_info` on lists).
Failure: `{"success": false, "errors": [{"code", "message"}, …], "messages": [], "result": null}`.

Gateway traffic (`/v1/…`) answers errors in another shape (protocol.md §8, `transports/encode.py`);
the handlers here only act on paths under /client/v4 and hand everything else on.

Error codes of the management API (ours; the public service documents none for these cases):

| HTTP | code  | when                                                         |
|------|-------|--------------------------------------------------------------|
| 400  | 1001  | invalid input, one entry per bad field (`"<field>: <why>"`)  |
| 404  | 1002  | unknown id (gateway, token)                                  |
| 409  | 1003  | the id is already taken                                      |
| 404  | 7000  | no such route under /client/v4 (the public API's code)       |
| 405  | 7001  | method not allowed on this route (the public API's code)     |
| 401  | 10000 | missing, malformed, unknown, expired or revoked token        |
| 403  | 10001 | valid token without the permission, account or gateway       |
| 500  | 1000  | internal error (a bug: bad input never gets here)            |
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from fastapi import FastAPI
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

MANAGEMENT_PREFIX = "/client/v4/"

T = TypeVar("T")


class ErrorItem(BaseModel):
    code: int
    message: str


class ResultInfo(BaseModel):
    page: int
    per_page: int
    count: int
    total_count: int


class Envelope(BaseModel, Generic[T]):
    success: bool = True
    errors: list[ErrorItem] = Field(default_factory=list)
    messages: list[str] = Field(default_factory=list)
    result: T


class PagedEnvelope(Envelope[list[T]], Generic[T]):
    result_info: ResultInfo


class ErrorEnvelope(BaseModel):
    success: bool = False
    errors: list[ErrorItem]
    messages: list[str] = Field(default_factory=list)
    result: None = None


# For the OpenAPI document of every management router.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorEnvelope, "description": "Invalid input (code 1001, one entry per field)"},
    401: {"model": ErrorEnvelope, "description": "Missing or invalid token (code 10000)"},
    403: {"model": ErrorEnvelope, "description": "Token lacks the permission (code 10001)"},
    404: {"model": ErrorEnvelope, "description": "Unknown id (code 1002)"},
    409: {"model": ErrorEnvelope, "description": "The id is already taken (code 1003)"},
}


def ok(result: Any, result_info: ResultInfo | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return body


def v4_error_body(errors: Sequence[tuple[int, str]]) -> dict[str, Any]:
    return {
        "success": False,
        "errors": [{"code": code, "message": message} for code, message in errors],
        "messages": [],
        "result": None,
    }


def error_response(status: int, errors: Sequence[tuple[int, str]]) -> JSONResponse:
    return JSONResponse(v4_error_body(errors), status_code=status)


class ManagementError(Exception):
    """Raised by management routes and dependencies; rendered as a v4 error envelope."""

    status: int = 400
    code: int = 1001
    default_message: str = "Invalid request"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidInput(ManagementError):
    status, code, default_message = 400, 1001, "Invalid request"


class NotFound(ManagementError):
    status, code, default_message = 404, 1002, "Not found"


class Conflict(ManagementError):
    status, code, default_message = 409, 1003, "Already exists"


class AuthenticationError(ManagementError):
    status, code, default_message = 401, 10000, "Authentication error"


class PermissionDenied(ManagementError):
    status, code, default_message = 403, 10001, "Permission denied"


_HTTP_ERROR_CODES = {400: 1001, 404: 7000, 405: 7001}


def is_management_path(request: Request) -> bool:
    path = request.url.path
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path.startswith(MANAGEMENT_PREFIX)


def validation_messages(exc: RequestValidationError) -> list[tuple[int, str]]:
    """One `(1001, "<field>: <why>")` per bad field, e.g. `cache_ttl: …`, `permissions.0: …`.

    The location prefix (body, query, path) is dropped: field names do not collide across them here.
    """
    items: list[tuple[int, str]] = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            items.append((InvalidInput.code, "body: not valid JSON"))
            continue
        loc = [str(part) for part in error.get("loc", ())]
        if len(loc) > 1 and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        deeper = (error.get("ctx") or {}).get("at")  # a validator of a list naming the bad entry
        if isinstance(deeper, str):
            loc = [*loc, *deeper.split(".")]
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        items.append((InvalidInput.code, f"{'.'.join(loc) or 'body'}: {message}"))
    return items or [(InvalidInput.code, InvalidInput.default_message)]


async def _delegate(handler: Callable[[Request, Any], Any], request: Request, exc: Exception) -> Response:
    """Call a handler Starlette-style: it may be a coroutine function or a plain function."""
    response = handler(request, exc)
    if inspect.isawaitable(response):
        response = await response
    assert isinstance(response, Response)
    return response


async def _management_error(_request: Request, exc: ManagementError) -> Response:
    return error_response(exc.status, [(exc.code, exc.message)])


async def _default_server_error(_request: Request, _exc: Exception) -> Response:
    return PlainTextResponse("Internal Server Error", status_code=500)


def install_management_error_handlers(app: FastAPI) -> None:
    """Register the v4 error handlers for paths under /client/v4.

    Starlette keeps one handler per exception class, so for other paths each handler delegates to
    the one registered before it (or FastAPI's default). Call this *after* installing the gateway
    traffic's handlers; one installed later for the same class would replace these.
    """
    previous_validation = app.exception_handlers.get(
        RequestValidationError, request_validation_exception_handler
    )
    previous_http = app.exception_handlers.get(StarletteHTTPException, http_exception_handler)
    previous_server = app.exception_handlers.get(Exception, _default_server_error)

    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        if not is_management_path(request):
            return await _delegate(previous_validation, request, exc)
        return error_response(400, validation_messages(exc))

    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        if not is_management_path(request):
            return await _delegate(previous_http, request, exc)
        code = _HTTP_ERROR_CODES.get(exc.status_code, 1000)
        message = "No route for that URI" if code == 7000 else str(exc.detail)
        response = error_response(exc.status_code, [(code, message)])
        response.headers.update(exc.headers or {})
        return response

    async def on_server_error(request: Request, exc: Exception) -> Response:
        if not is_management_path(request):
            return await _delegate(previous_server, request, exc)
        return error_response(500, [(1000, "Internal error")])

    app.add_exception_handler(ManagementError, _management_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, on_server_error)
