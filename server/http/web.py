"""Serving the browser client: its page, its modules and the vendored libsodium (docs/operations.md).

The page is served with a strict Content-Security-Policy: scripts only from
this origin, the inline import map allowed by its hash, WebAssembly compiled
(libsodium runs as WebAssembly), connections only to this origin. Only the
folders the page needs are served, never ``node_modules`` as a whole.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SERVED_FOLDERS = ("src", "app", "assets")
_WRAPPERS = "libsodium-wrappers-sumo/libsodium-wrappers.mjs"
_SODIUM = "libsodium-sumo/libsodium-sumo.mjs"
VENDORED = {
    _WRAPPERS: "node_modules/libsodium-wrappers-sumo/dist/modules-sumo-esm/libsodium-wrappers.mjs",
    _SODIUM: "node_modules/libsodium-sumo/dist/modules-sumo-esm/libsodium-sumo.mjs",
}
"""URL path under /vendor/ -> file under the client's folder (npm ci installs them)."""
_IMPORT_MAP = re.compile(r'<script type="importmap">(.*?)</script>', re.DOTALL)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def content_security_policy(page: str) -> str:
    """The page's policy; inline scripts are allowed only by hash (the import map)."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _IMPORT_MAP.findall(page)
    ]
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self' 'wasm-unsafe-eval' " + " ".join(hashes),
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "manifest-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def routes(web_dir: Path | None) -> list[BaseRoute]:
    """The client's routes, or a page saying it is not installed."""
    index = None if web_dir is None else web_dir / "index.html"
    if web_dir is None or index is None or not index.is_file():

        async def missing(_request: Request) -> Response:
            return HTMLResponse(
                "<!doctype html><title>Lien</title><p>The web client is not installed on this node.</p>",
                status_code=404,
                headers=SECURITY_HEADERS,
            )

        return [Route("/", missing, methods=["GET"])]

    page = index.read_text(encoding="utf-8")
    page_headers = {**SECURITY_HEADERS, "Content-Security-Policy": content_security_policy(page)}

    async def home(_request: Request) -> Response:
        return HTMLResponse(page, headers={**page_headers, "Cache-Control": "no-cache"})

    async def vendored(request: Request) -> Response:
        relative = VENDORED.get(request.path_params["path"])
        file = None if relative is None else web_dir / relative
        if file is None or not file.is_file():
            return Response("Not found", status_code=404, media_type="text/plain")
        return FileResponse(file, media_type="text/javascript", headers=SECURITY_HEADERS)

    served: list[BaseRoute] = [
        Route("/", home, methods=["GET"]),
        Route("/vendor/{path:path}", vendored, methods=["GET"]),
    ]
    for folder in SERVED_FOLDERS:
        if (web_dir / folder).is_dir():
            served.append(Mount(f"/{folder}", StaticFiles(directory=web_dir / folder), name=folder))
    return served


class SecurityHeaders:
    """ASGI middleware: every HTTP response gets ``nosniff`` and ``no-referrer`` (static files included)."""

    _ADDED = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in self._ADDED if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
