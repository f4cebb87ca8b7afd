"""The user guide (`docs/*.md` of the repository) served as plain HTML at /docs/guide/, so a
running gateway carries its own documentation. Pages are rendered once, at startup, with raw HTML
in the markdown escaped; nothing is loaded from another host."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI
from markdown_it import MarkdownIt
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, RedirectResponse

import app as app_package

# Installed editable from the repository (as migrations/ is): docs/ sits next to app/.
DOCS_DIR = Path(app_package.__file__).resolve().parent.parent / "docs"
GUIDE_URL = "/docs/guide/"
INDEX = "index.md"

_STYLE = """body{max-width:52rem;margin:2rem auto;padding:0 1rem;font:16px/1.5 system-ui,sans-serif}
pre{background:#f4f4f4;padding:.75rem;overflow-x:auto}code{font-size:.92em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;vertical-align:top}"""


def render_page(markdown: str, title: str) -> str:
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    nav = f'<p><a href="{GUIDE_URL}">Guide</a> · <a href="/docs">API reference</a></p>'
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)} - aigw</title>"
        f"<style>{_STYLE}</style></head><body>{nav}{body}</body></html>"
    )


def load_pages(directory: Path = DOCS_DIR) -> dict[str, str]:
    """`errors.md` → its HTML; empty when the docs are not installed."""
    if not directory.is_dir():
        return {}
    pages: dict[str, str] = {}
    for path in sorted(directory.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        title = next((line[2:] for line in text.splitlines() if line.startswith("# ")), path.stem)
        pages[path.name] = render_page(text, title)
    return pages


def install_guide(app: FastAPI) -> None:
    pages = load_pages()

    @app.get("/docs/guide", include_in_schema=False)
    async def guide_root() -> RedirectResponse:
        return RedirectResponse(GUIDE_URL)

    @app.get(GUIDE_URL, include_in_schema=False)
    @app.get(GUIDE_URL + "{name}", include_in_schema=False)
    async def guide_page(name: str = INDEX) -> HTMLResponse:
        page = pages.get(name if name.endswith(".md") else f"{name}.md")
        if page is None:
            raise HTTPException(404, f"No guide page {name!r}; the index is at {GUIDE_URL}")
        return HTMLResponse(page)
