"""The request id: accepted from ``X-Request-ID`` (when well-formed) or generated, bound to
every log line of the request (see :mod:`valuecanvas.core.middleware`), returned to the
caller and passed on to outgoing calls."""

from __future__ import annotations

import re
import uuid
from types import SimpleNamespace

import aiohttp
import httpx
import structlog

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def current_request_id() -> str | None:
    """The request id the middleware bound for this request: kept in one place, structlog's
    context variables, which also put it on every log line."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


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


async def _propagate_to_aiohttp(
    _: aiohttp.ClientSession, __: SimpleNamespace, params: aiohttp.TraceRequestStartParams
) -> None:
    request_id = current_request_id()
    if request_id and REQUEST_ID_HEADER not in params.headers:
        params.headers[REQUEST_ID_HEADER] = request_id


def request_id_trace_config() -> aiohttp.TraceConfig:
    """The same for an aiohttp session (the LLM proxy's upstream client):
    ``aiohttp.ClientSession(trace_configs=[request_id_trace_config()])``."""
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_propagate_to_aiohttp)
    return config
