"""OpenAPI pages that load nothing from other hosts: Swagger UI and Redoc assets come from the
installed `fastapi-offline` package, Redoc's web fonts are off, and the Redocly logo its bundle
would fetch from a CDN is replaced by an inline image. Also the management API's security scheme."""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from app.api.guide import install_guide

STATIC_URL = "/static-docs"
REDOC_JS_URL = "/docs-assets/redoc.standalone.js"
MANAGEMENT_SCHEME = "managementToken"
_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
_INLINE_LOGO = b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E"


def add_management_docs(schema: dict[str, Any]) -> None:
    """A bearer scheme on every /client/v4 operation, so *Try it out* can authenticate."""
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[MANAGEMENT_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer <token>`: the server's AIGW_ADMIN_TOKEN, or a token "
        "with the read (GET) or edit (writes) permission from `aigw tokens create` or POST …/tokens.",
    }
    for path, operations in schema.get("paths", {}).items():
        if path.startswith("/client/v4/"):
            for operation in operations.values():
                operation["security"] = [{MANAGEMENT_SCHEME: []}]


def install_docs(app: FastAPI) -> None:
    install_guide(app)
    assets = resources.files("fastapi_offline") / "static"
    app.mount(STATIC_URL, StaticFiles(directory=str(assets)), name="static-docs")
    redoc_js = (assets / "redoc.standalone.js").read_bytes().replace(_CDN_LOGO, _INLINE_LOGO)

    @app.get(REDOC_JS_URL, include_in_schema=False)
    async def redoc_bundle() -> Response:
        return Response(redoc_js, media_type="text/javascript", headers={"Cache-Control": "max-age=3600"})

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{REDOC_JS_URL}",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )
