"""The operator dashboard: a page at / and its files under /static/, served by the API itself.

Plain HTML, CSS and JavaScript from ``static/`` with no build step. The page talks only to this
server (the Content-Security-Policy below forbids anything else), signs in with an API token
and stays live from ``GET /v1/events``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: the page may load and call nothing but this server; no inline script or style
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    # the event stream's URL carries the token: never send it on as a Referer
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
def dashboard() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


def mount(app: FastAPI) -> None:
    """Serve the dashboard at / and its files at /static/ from this package."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
