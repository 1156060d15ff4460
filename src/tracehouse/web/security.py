"""Security headers for every HTTP response of the server.

The page runs only scripts and styles served from its own origin: no inline ``<script>``, no
``style=`` attributes, no ``eval`` (htmx is configured without it), nothing from another host.
Its WebSocket connects back to the same server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self' ws: wss:",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "object-src 'none'",
    )
)
HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


class SecurityHeaders:
    """ASGI middleware: adds :data:`HEADERS` to each HTTP response that does not set them itself,
    except under the paths in ``skip`` (and below them)."""

    def __init__(self, app: Callable[..., Awaitable[None]], skip: tuple[str, ...] = ()) -> None:
        self.app = app
        self.skip = skip

    def _skipped(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.skip)

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or self._skipped(scope.get("path", "")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [header for header in HEADERS if header[0] not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
