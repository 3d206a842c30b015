"""A second, narrow way in for a service's hottest endpoints (see HotPathMiddleware)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from fastapi import Request
from fastapi.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from valuecanvas.core.auth import UnauthorizedError, require_identity, unauthorized_response
from valuecanvas.core.identity import Identity

HotHandler = Callable[[Request, Identity], Awaitable[Response]]


class HotPathMiddleware:
    """Serves a service's hottest endpoints straight from the ASGI scope.

    A request to one of ``routes`` (method, exact path) skips FastAPI's middleware layers,
    routing and dependency solving: the caller is verified with :func:`require_identity` and
    the same handler function FastAPI routes to (and documents in OpenAPI) is called. On
    the llm-proxy this path carries every completion; see docs/benchmarks.md for what it
    saves. Everything else goes through FastAPI as usual.
    """

    def __init__(self, app: ASGIApp, *, routes: Mapping[tuple[str, str], HotHandler]) -> None:
        self.app = app
        # As Starlette routes too, so that scope["route"] names the template (metrics).
        self.routes = {
            key: (handler, Route(key[1], handler, methods=[key[0]]))
            for key, handler in routes.items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        if hot is None:
            await self.app(scope, receive, send)
            return
        handler, scope["route"] = hot
        request = Request(scope, receive)
        try:
            caller = await require_identity(request)
        except UnauthorizedError as exc:
            response: Response = unauthorized_response(exc, scope["path"])
        else:
            response = await handler(request, caller)
        await response(scope, receive, send)
