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
  event). The route's timeout bounds the wait for the answer's start, and then each silence
  within it (a stream quiet for longer is cut).

The client is aiohttp, as on the llm-proxy's hot path: httpx cost several times the CPU per
request here (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDict
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


def request_headers(scope: Scope, internal_token: str) -> CIMultiDict[str]:
    raw: list[tuple[bytes, bytes]] = scope["headers"]
    dropped = _NOT_FORWARDED | _connection_tokens(raw)
    headers: CIMultiDict[str] = CIMultiDict(
        (key.decode("latin-1"), value.decode("latin-1"))
        for key, value in raw
        if key.decode("latin-1").lower() not in dropped
    )
    client = scope.get("client")
    host = next((value.decode("latin-1") for key, value in raw if key == b"host"), "")
    headers.add("authorization", f"Bearer {internal_token}")
    headers.add("x-forwarded-for", client[0] if client else "")
    headers.add("x-forwarded-proto", scope.get("scheme", "http"))
    headers.add("x-forwarded-host", host)
    headers.add(REQUEST_ID_HEADER.lower(), current_request_id() or "")
    return headers


def response_headers(response: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    raw = list(response.raw_headers)
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
    retry_attempts: int
    breaker_failures: int
    breaker_cooldown_seconds: float
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)
    _session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running event loop. Bodies pass as they are
        # (no decompression), and nothing is added to the caller's headers.
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=256, limit_per_host=0, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, trust_env=False
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

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
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=min(route.timeout_seconds, 3.0),
            sock_read=route.timeout_seconds,
        )
        response: aiohttp.ClientResponse | None = None
        for attempt in range(1, attempts + 1):
            if not breaker.allow():
                raise ProblemError(
                    503, "upstream_unavailable",
                    f"{service} is failing; the gateway is not sending it requests for now",
                    headers={"Retry-After": str(int(breaker.cooldown_seconds))},
                )  # fmt: skip
            try:
                async with asyncio.timeout(route.timeout_seconds):
                    response = await self.session.request(
                        method, url, headers=headers, data=body or None, timeout=timeout,
                        allow_redirects=False, skip_auto_headers=_NO_AUTO_HEADERS,
                    )  # fmt: skip
            except TimeoutError:
                breaker.record_failure()
                add_log_fields(scope, upstream=service, upstream_attempts=attempt)
                raise ProblemError(
                    504, "upstream_timeout",
                    f"{service} did not answer within {route.timeout_seconds:g} s",
                ) from None  # fmt: skip
            except aiohttp.ClientError as exc:
                breaker.record_failure()
                if attempt < attempts:
                    await asyncio.sleep(0.05 * attempt)
                    continue
                add_log_fields(scope, upstream=service, upstream_attempts=attempt)
                raise ProblemError(
                    503, "upstream_unavailable", f"{service} is unavailable ({type(exc).__name__})"
                ) from None
            if response.status in _RETRY_STATUSES:
                breaker.record_failure()
                if attempt < attempts:
                    response.release()
                    await asyncio.sleep(0.05 * attempt)
                    continue
            else:
                breaker.record_success()
            break
        assert response is not None
        add_log_fields(scope, upstream=service, upstream_status=response.status)
        await _relay(response, send)


_NO_AUTO_HEADERS = ("User-Agent", "Accept-Encoding", "Content-Type")


async def _relay(response: aiohttp.ClientResponse, send: Send) -> None:
    try:
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": response_headers(response),
            }
        )
        async for chunk in response.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except (aiohttp.ClientError, TimeoutError) as exc:
        # The answer has started: its status cannot change. The connection is dropped (so
        # the client sees a truncated answer, not a complete-looking one), and the log
        # says why.
        _log.warning("upstream stream broke", error=type(exc).__name__)
        raise
    finally:
        response.release()


def summary(upstreams: Upstreams) -> dict[str, Any]:
    return {name: int(breaker.state) for name, breaker in upstreams.breakers.items()}
