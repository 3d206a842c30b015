"""Forwarding a public request to the service its route names, and streaming the answer back.

- The request body is read up to the route's limit (413 past it) and held, so an
  idempotent request can be sent again.
- Hop-by-hop headers are dropped both ways, and so are the caller's credentials and any
  ``X-Forwarded-*`` they sent; the gateway sets ``X-Forwarded-For/-Proto/-Host``,
  ``X-Request-ID`` and the internal token that tells the service who is calling.
- Idempotent methods are retried on a refused connection or a 502/503/504; others never.
- A breaker per service: after N failures in a row it answers 503 at once for a cooldown.
- A service that refuses (or whose breaker is open) gives 503; one that does not answer
  within the route's timeout gives 504. Both as problems.
- The answer is streamed as it arrives (server-sent events reach the client event by
  event); only its start waits for the timeout.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.types import Receive, Scope, Send

from valuecanvas.api_gateway.routes import Route
from valuecanvas.core.breaker import CircuitBreaker
from valuecanvas.core.errors import ProblemError
from valuecanvas.core.logging import get_logger
from valuecanvas.core.middleware import add_log_fields
from valuecanvas.core.requestid import REQUEST_ID_HEADER, current_request_id

_log = get_logger("valuecanvas.api_gateway.proxy")
# RFC 9110 7.6.1, plus the headers the gateway sets itself or must not pass on.
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "transfer-encoding", "upgrade", "proxy-connection",
    }
)  # fmt: skip
_NOT_FORWARDED = HOP_BY_HOP | {
    "host", "content-length", "authorization", "x-api-key", "cookie", "x-request-id",
    "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "x-real-ip",
}  # fmt: skip
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_RETRY_STATUSES = frozenset({502, 503, 504})


def _connection_tokens(headers: list[tuple[bytes, bytes]]) -> set[str]:
    """Headers named in Connection are hop-by-hop too (RFC 9110 7.6.1)."""
    named: set[str] = set()
    for key, value in headers:
        if key.lower() == b"connection":
            named |= {token.strip().lower() for token in value.decode("latin-1").split(",")}
    return named


def request_headers(scope: Scope, internal_token: str) -> list[tuple[str, str]]:
    raw: list[tuple[bytes, bytes]] = scope["headers"]
    dropped = _NOT_FORWARDED | _connection_tokens(raw)
    headers = [
        (key.decode("latin-1"), value.decode("latin-1"))
        for key, value in raw
        if key.decode("latin-1").lower() not in dropped
    ]
    client = scope.get("client")
    host = next((value.decode("latin-1") for key, value in raw if key == b"host"), "")
    headers += [
        ("authorization", f"Bearer {internal_token}"),
        ("x-forwarded-for", client[0] if client else ""),
        ("x-forwarded-proto", scope.get("scheme", "http")),
        ("x-forwarded-host", host),
        (REQUEST_ID_HEADER.lower(), current_request_id() or ""),
    ]
    return headers


def response_headers(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    raw = response.headers.raw
    dropped = HOP_BY_HOP | {"x-request-id", "server", "date"} | _connection_tokens(raw)
    return [(key, value) for key, value in raw if key.decode("latin-1").lower() not in dropped]


async def read_body(receive: Receive, scope: Scope, limit: int) -> bytes:
    """The whole request body, or a 413 once it passes ``limit`` (declared or sent)."""
    too_large = ProblemError(
        413, "request_too_large", f"request body is over this route's {limit}-byte limit"
    )
    declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ProblemError(400, "client_disconnected", "the client went away")
        body += message.get("body", b"")
        if len(body) > limit:
            raise too_large
        if not message.get("more_body", False):
            return bytes(body)


@dataclass
class Upstreams:
    """The services behind the gateway: their base URLs, one breaker each, one client."""

    urls: dict[str, str]
    client: httpx.AsyncClient
    retry_attempts: int
    breaker_failures: int
    breaker_cooldown_seconds: float
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)

    def breaker(self, service: str) -> CircuitBreaker:
        if service not in self.breakers:
            self.breakers[service] = CircuitBreaker(
                self.breaker_failures, self.breaker_cooldown_seconds
            )
        return self.breakers[service]

    async def forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: Route,
        body: bytes,
        internal_token: str,
    ) -> None:
        service = route.service
        breaker = self.breaker(service)
        method: str = scope["method"]
        query = scope.get("query_string", b"").decode("latin-1")
        url = self.urls[service] + route.target_path(scope["path"]) + (f"?{query}" if query else "")
        headers = request_headers(scope, internal_token)
        attempts = self.retry_attempts if method in IDEMPOTENT else 1
        timeout = httpx.Timeout(route.timeout_seconds, connect=min(route.timeout_seconds, 3.0))
        response: httpx.Response | None = None
        for attempt in range(1, attempts + 1):
            if not breaker.allow():
                raise ProblemError(
                    503, "upstream_unavailable",
                    f"{service} is failing; the gateway is not sending it requests for now",
                    headers={"Retry-After": str(int(breaker.cooldown_seconds))},
                )  # fmt: skip
            request = self.client.build_request(
                method, url, headers=headers, content=body, timeout=timeout
            )
            try:
                async with asyncio.timeout(route.timeout_seconds):
                    response = await self.client.send(request, stream=True)
            except (TimeoutError, httpx.TimeoutException):
                breaker.record_failure()
                add_log_fields(scope, upstream=service, upstream_attempts=attempt)
                raise ProblemError(
                    504, "upstream_timeout",
                    f"{service} did not answer within {route.timeout_seconds:g} s",
                ) from None  # fmt: skip
            except httpx.TransportError as exc:
                breaker.record_failure()
                if attempt < attempts:
                    await asyncio.sleep(0.05 * attempt)
                    continue
                add_log_fields(scope, upstream=service, upstream_attempts=attempt)
                raise ProblemError(
                    503, "upstream_unavailable", f"{service} is unavailable ({type(exc).__name__})"
                ) from None
            if response.status_code in _RETRY_STATUSES:
                breaker.record_failure()
                if attempt < attempts:
                    await response.aclose()
                    await asyncio.sleep(0.05 * attempt)
                    continue
            else:
                breaker.record_success()
            break
        assert response is not None
        add_log_fields(scope, upstream=service, upstream_status=response.status_code)
        await _relay(response, send)


async def _relay(response: httpx.Response, send: Send) -> None:
    try:
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": response_headers(response),
            }
        )
        async for chunk in response.aiter_raw():
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except httpx.HTTPError as exc:
        # The answer has started: its status cannot change. The connection is dropped (so
        # the client sees a truncated answer, not a complete-looking one), and the log
        # says why.
        _log.warning("upstream stream broke", error=type(exc).__name__)
        raise
    finally:
        await response.aclose()


def upstream_client(max_connections: int = 256) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=64)
    return httpx.AsyncClient(limits=limits, follow_redirects=False, trust_env=False)


def summary(upstreams: Upstreams) -> dict[str, Any]:
    return {name: int(breaker.state) for name, breaker in upstreams.breakers.items()}
