"""`/dashboard/`: the web dashboard, a static page app served from the package (no Node.js, no
build step, no request to any other host). It is a client of the public management API only.

Every response carries a strict Content-Security-Policy: scripts, styles and API calls from this
origin only, no inline script, no framing."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from starlette.responses import FileResponse, RedirectResponse, Response

STATIC = Path(__file__).resolve().parent.parent / "dashboard_static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".md": "text/markdown"}
# The files that may be served, named once: no path from the URL ever reaches the file system.
_FILES = {
    str(path.relative_to(STATIC)): path
    for path in STATIC.rglob("*")
    if path.is_file() and path.suffix in _TYPES
}

router = APIRouter(include_in_schema=False)


def _served(path: Path) -> Response:
    headers = {
        "content-security-policy": CSP,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "cache-control": "no-cache",
    }
    return FileResponse(path, media_type=f"{_TYPES[path.suffix]}; charset=utf-8", headers=headers)


@router.get("/")
@router.get("/dashboard")
async def to_dashboard() -> RedirectResponse:
    return RedirectResponse("/dashboard/", status_code=307)


@router.get("/dashboard/")
async def dashboard_index() -> Response:
    return _served(_FILES["index.html"])


@router.get("/dashboard/{name:path}")
async def dashboard_file(name: str) -> Response:
    path = _FILES.get(name)
    if path is None:
        raise HTTPException(status_code=404)
    return _served(path)
