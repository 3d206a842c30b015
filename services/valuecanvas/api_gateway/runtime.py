"""What the gateway opens at start beside the shared state: the route table and the
upstream client, the API-key store and its ``last_used_at`` writer, the limiter, and the
internal tokens it sends downstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import cast
from uuid import uuid4

from cachetools import TTLCache
from starlette.requests import Request

from valuecanvas.api_gateway.caller import GatewayCaller
from valuecanvas.api_gateway.keys import ApiKeyStore, flush_periodically
from valuecanvas.api_gateway.proxy import Upstreams
from valuecanvas.api_gateway.routes import RouteTable
from valuecanvas.api_gateway.settings import ApiGatewaySettings
from valuecanvas.core.identity import Identity, InternalTokenIssuer
from valuecanvas.core.logging import get_logger
from valuecanvas.core.ratelimit import (
    Bucket,
    Decision,
    MemorySlidingWindow,
    RedisSlidingWindow,
    SlidingWindowLimiter,
)
from valuecanvas.core.state import AppState

RUNTIME_STATE = "gateway"
_log = get_logger("valuecanvas.api_gateway")


@dataclass
class GatewayRuntime:
    state: AppState
    settings: ApiGatewaySettings
    routes: RouteTable
    upstreams: Upstreams
    keys: ApiKeyStore
    window: SlidingWindowLimiter
    tokens: InternalTokenIssuer

    def __post_init__(self) -> None:
        # A minted token is reused for half its life: downstream services verify each
        # distinct token once (their cache), so this saves both sides' work.
        ttl = max(1.0, self.tokens.ttl_seconds / 2)
        self._tokens: TTLCache[tuple[object, ...], str] = TTLCache(maxsize=10_000, ttl=ttl)

    def internal_token(self, identity: Identity) -> str:
        key = (identity.user_id, identity.organization_id, identity.via)
        token = self._tokens.get(key)
        if token is None:
            token = self.tokens.mint(identity)
            self._tokens[key] = token
        return token

    def caller_buckets(self, caller: GatewayCaller) -> list[Bucket]:
        settings = self.settings
        scope, key = caller.rate_subject
        limit = (
            settings.gateway_limit_per_api_key
            if scope == "api_key"
            else settings.gateway_limit_per_user
        )
        buckets = [Bucket(scope, key, limit)]
        if caller.identity.organization_id is not None:
            buckets.append(
                Bucket(
                    "organization",
                    str(caller.identity.organization_id),
                    settings.gateway_limit_per_organization,
                )
            )
        return buckets

    def address_buckets(self, address: str) -> list[Bucket]:
        return [Bucket("ip", address, self.settings.gateway_limit_per_ip)]

    async def admit(self, buckets: list[Bucket]) -> Decision:
        # The admission id is the server's own, per request: no client value keys a limit.
        return await self.window.admit(buckets, uuid4().hex)


def runtime_from_scope(state: Mapping[str, object]) -> GatewayRuntime:
    return cast(GatewayRuntime, state[RUNTIME_STATE])


def runtime_of(request: Request) -> GatewayRuntime:
    runtime: GatewayRuntime = getattr(request.state, RUNTIME_STATE)
    return runtime


@asynccontextmanager
async def lifespan_extension(state: AppState) -> AsyncIterator[Mapping[str, object]]:
    settings = state.settings
    assert isinstance(settings, ApiGatewaySettings)
    window: SlidingWindowLimiter = (
        RedisSlidingWindow(
            state.redis, settings.gateway_limit_window_seconds, prefix="valuecanvas:gateway"
        )
        if state.redis is not None
        else MemorySlidingWindow(settings.gateway_limit_window_seconds)
    )
    services = {route.service for route in settings.gateway_routes}
    upstreams = Upstreams(
        urls={service: settings.service_url(service) for service in services},
        retry_attempts=settings.gateway_retry_attempts,
        breaker_failures=settings.gateway_breaker_failures,
        breaker_cooldown_seconds=settings.gateway_breaker_cooldown_seconds,
    )
    keys = ApiKeyStore(state.pool, cache_seconds=settings.gateway_api_key_cache_seconds)
    runtime = GatewayRuntime(
        state=state,
        settings=settings,
        routes=RouteTable(settings.gateway_routes),
        upstreams=upstreams,
        keys=keys,
        window=window,
        tokens=state.internal_tokens,
    )
    _log.info(
        "routes",
        routes={route.path: route.service for route in settings.gateway_routes},
        limiter=type(window).__name__,
    )
    flusher = asyncio.create_task(
        flush_periodically(keys, settings.gateway_last_used_flush_seconds)
    )
    try:
        yield {RUNTIME_STATE: runtime}
    finally:
        flusher.cancel()
        with suppress(asyncio.CancelledError):
            await flusher
        await keys.flush()
        await upstreams.aclose()
