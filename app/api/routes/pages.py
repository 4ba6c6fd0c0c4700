"""The web pages: the shopper's search at ``/`` and the product manager's console at
``/console``, with their assets under ``/static`` (all from ``Settings.frontend_dir``)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

# The pages load only their own scripts and styles; photos are shown from blob: URLs (the
# shopper's own picture) and cropper.css draws its grid from a data: image. Style attributes
# are allowed (the console's markup and explain bars use them; they cannot run code), inline
# <script> and <style> are not.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def add_pages(app: FastAPI, frontend_dir: Path) -> None:
    """Serve the pages and, when the folder is there, their assets."""
    router = APIRouter(include_in_schema=False)

    def page(name: str) -> FileResponse:
        path = frontend_dir / name
        if not path.is_file():
            raise HTTPException(404, f"the web pages are not installed ({path} is missing)")
        # pages are small: always revalidated, so a new release is seen at once
        headers = {"Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY}
        return FileResponse(path, media_type="text/html", headers=headers)

    @router.get("/")
    async def shopper_page() -> FileResponse:
        return page("index.html")

    @router.get("/console")
    async def console_page() -> FileResponse:
        return page("console.html")

    app.include_router(router)
    static = frontend_dir / "static"
    if static.is_dir():
        # StaticFiles resolves every path inside this folder and refuses anything outside it
        app.mount("/static", StaticFiles(directory=static), name="static")
