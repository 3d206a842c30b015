"""The request id: accepted from ``X-Request-ID`` (when well-formed) or generated, bound to
every log line of the request (see :mod:`valuecanvas.core.middleware`), returned to the
caller and passed on to outgoing calls."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token

import httpx

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _current_request_id.get()


def bind_request_id(request_id: str) -> Token[str | None]:
    return _current_request_id.set(request_id)


def unbind_request_id(token: Token[str | None]) -> None:
    _current_request_id.reset(token)


def accept_or_generate(candidate: str | None) -> str:
    if candidate and _VALID_REQUEST_ID.match(candidate):
        return candidate
    return uuid.uuid4().hex


async def _propagate_request_id(request: httpx.Request) -> None:
    request_id = current_request_id()
    if request_id and REQUEST_ID_HEADER not in request.headers:
        request.headers[REQUEST_ID_HEADER] = request_id


def create_http_client(**kwargs: object) -> httpx.AsyncClient:
    """An httpx client that passes the current request id on to the service it calls."""
    return httpx.AsyncClient(event_hooks={"request": [_propagate_request_id]}, **kwargs)  # type: ignore[arg-type]
