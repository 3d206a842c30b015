"""The gateway's request pipeline, in front of its own routes: authenticate, limit, then
either forward (a routed public path) or hand over to the platform API.

Pure ASGI, like RequestMiddleware, so a forwarded answer streams through untouched.
Refusals are problems and happen before anything is read or written: 401 (who are you),
403 (a scope the API key lacks), 405, 413, 429 (a limit; RateLimit and Retry-After say
which and for how long), 503 (the limiter is away: the gateway fails closed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from valuecanvas.api_gateway.caller import (
    CALLER_STATE,
    GatewayCaller,
    UnauthenticatedError,
    authenticate,
    credentials,
)
from valuecanvas.api_gateway.proxy import read_body
from valuecanvas.api_gateway.runtime import GatewayRuntime, runtime_from_scope
from valuecanvas.core.auth import VERIFIED_IDENTITY
from valuecanvas.core.errors import ProblemError, error_response, kind_for
from valuecanvas.core.middleware import add_log_fields
from valuecanvas.core.probes import PROBE_PATHS
from valuecanvas.core.ratelimit import Bucket, Decision, RateLimiterUnavailableError

# Served without credentials (each client address is limited): the API's documents.
OPEN_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


def ratelimit_headers(decision: Decision, window_seconds: int) -> list[tuple[bytes, bytes]]:
    """The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers): the binding
    policy (quota, window) and what is left of it, with the seconds until it resets."""
    name = decision.scope
    headers = [
        (b"ratelimit-policy", f'"{name}";q={decision.limit};w={window_seconds}'.encode()),
        (
            b"ratelimit",
            f'"{name}";r={max(decision.remaining, 0)};t={decision.reset_seconds}'.encode(),
        ),
    ]
    if not decision.admitted:
        headers.append((b"retry-after", str(decision.reset_seconds).encode()))
    return headers


class GatewayMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        runtime = runtime_from_scope(scope["state"])
        extra: list[tuple[bytes, bytes]] = []

        async def send_with(message: Message) -> None:
            if message["type"] == "http.response.start" and extra:
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self._handle(scope, receive, send_with, runtime, extra)
        except ProblemError as exc:
            headers = dict(exc.headers or {})
            response = error_response(
                exc.status, kind_for(exc.status), exc.code, exc.message,
                param=exc.param, headers=headers, instance=scope["path"],
            )  # fmt: skip
            await response(scope, receive, send_with)

    async def _admit(
        self, runtime: GatewayRuntime, buckets: list[Bucket], extra: list[tuple[bytes, bytes]]
    ) -> None:
        try:
            decision = await runtime.admit(buckets)
        except RateLimiterUnavailableError:
            raise ProblemError(
                503, "rate_limiter_unavailable",
                "the rate limiter is unreachable; the gateway refuses rather than run unlimited",
                headers={"Retry-After": "1"},
            ) from None  # fmt: skip
        extra[:] = ratelimit_headers(decision, runtime.settings.gateway_limit_window_seconds)
        if not decision.admitted:
            raise ProblemError(
                429, f"{decision.scope}_rate_limit_exceeded",
                f"{decision.scope} limit of {decision.limit} requests per "
                f"{runtime.settings.gateway_limit_window_seconds} s reached; "
                f"retry in {decision.reset_seconds} s",
            )  # fmt: skip

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        runtime: GatewayRuntime,
        extra: list[tuple[bytes, bytes]],
    ) -> None:
        headers = _headers(scope)
        client = scope.get("client")
        address = client[0] if client else "unknown"
        caller: GatewayCaller | None = None
        try:
            found = credentials(headers)
            if found is not None:
                caller = await authenticate(found, runtime.state.verifier, runtime.keys)
        except UnauthenticatedError as exc:
            # Failed attempts count against the address: guessing keys costs the guesser.
            await self._admit(runtime, runtime.address_buckets(address), extra)
            raise _unauthorized(exc.reason) from None
        if caller is None:
            await self._admit(runtime, runtime.address_buckets(address), extra)
            if scope["path"] not in OPEN_PATHS:
                raise _unauthorized("missing credentials")
            await self.app(scope, receive, send)
            return
        await self._admit(runtime, runtime.caller_buckets(caller), extra)
        add_log_fields(
            scope,
            caller=str(caller.identity.user_id),
            organization=str(caller.identity.organization_id),
            via=caller.via,
        )
        method: str = scope["method"]
        route = runtime.routes.find(scope["path"])
        if route is not None:
            if not _SUBPATH.fullmatch(scope["path"][len(route.path) :]):
                # What the document allows below a route (segments of letters, digits, '.',
                # '_' and '-'); anything else (a control character, a space, an empty
                # segment) the upstream's URL handling could change into another path.
                raise ProblemError(404, "no_such_path", "no such path below " + route.path)
            if method not in route.methods:
                raise ProblemError(
                    405, "method_not_allowed",
                    f"{method} is not allowed on {route.path} (allowed: {', '.join(route.methods)})",
                    headers={"Allow": ", ".join(route.methods)},
                )  # fmt: skip
            caller.require_scope(route.scope_for(method))
            limit = route.max_body_bytes or runtime.settings.gateway_max_body_bytes
            body = await read_body(receive, scope, limit)
            token = runtime.internal_token(caller.identity)
            await runtime.upstreams.forward(scope, receive, send, route, body, token)
            return
        scope["state"][CALLER_STATE] = caller
        scope["state"][VERIFIED_IDENTITY] = caller.identity
        # Read here, within the limit (FastAPI would turn a refusal while it reads into a 400).
        body = await read_body(receive, scope, runtime.settings.gateway_max_body_bytes)
        await self.app(scope, _replay(body, receive), send)


_SUBPATH = re.compile(r"(/[A-Za-z0-9._-]+)*")


def _headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in scope["headers"]:
        name = key.decode("latin-1").lower()
        if name in ("authorization", "x-api-key"):
            if name in found:
                raise ProblemError(400, "duplicate_header", f"{name} is sent twice")
            found[name] = value.decode("latin-1")
    return found


def _unauthorized(reason: str) -> ProblemError:
    return ProblemError(
        401, "invalid_token", reason,
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{reason}"'},
    )  # fmt: skip


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for an app that reads a body already read (and checked) by the pipeline;
    after it, the client's own messages (a disconnect)."""
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_again


def caller_of(state: Mapping[str, object]) -> GatewayCaller | None:
    caller = state.get(CALLER_STATE)
    return caller if isinstance(caller, GatewayCaller) else None
