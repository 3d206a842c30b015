"""The request id: accepted from ``X-Request-ID`` (when well-formed) or generated, bound to
every log line of the request, returned to the caller and passed on to outgoing calls."""

from __future__ import annotations

import re
import time
import uuid
from contextvars import ContextVar

import httpx
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from valuecanvas.core.logging import get_logger

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_log = get_logger("valuecanvas.request")


def current_request_id() -> str | None:
    return _current_request_id.get()


def accept_or_generate(candidate: str | None) -> str:
    if candidate and _VALID_REQUEST_ID.match(candidate):
        return candidate
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Pure ASGI middleware (no body buffering): binds the id and logs one line per request."""

    def __init__(self, app: ASGIApp, *, quiet_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.quiet_paths = quiet_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = accept_or_generate(incoming)
        token = _current_request_id.set(request_id)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if scope["path"] not in self.quiet_paths:
                _log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )
            structlog.contextvars.clear_contextvars()
            _current_request_id.reset(token)


async def _propagate_request_id(request: httpx.Request) -> None:
    request_id = current_request_id()
    if request_id and REQUEST_ID_HEADER not in request.headers:
        request.headers[REQUEST_ID_HEADER] = request_id


def create_http_client(**kwargs: object) -> httpx.AsyncClient:
    """An httpx client that passes the current request id on to the service it calls."""
    return httpx.AsyncClient(event_hooks={"request": [_propagate_request_id]}, **kwargs)  # type: ignore[arg-type]
