"""The state every service's lifespan opens (pool, Redis, HTTP client, verifier, metrics)
and the accessor handlers reach it with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import redis.asyncio as redis
from starlette.requests import Request

from valuecanvas.core.db import Pool
from valuecanvas.core.identity import InternalTokenIssuer, TokenVerifier
from valuecanvas.core.metrics import ServiceMetrics
from valuecanvas.core.settings import ServiceSettings


@dataclass
class AppState:
    """What the lifespan opens and closes; handlers reach it with :func:`get_state`."""

    settings: ServiceSettings
    metrics: ServiceMetrics
    pool: Pool
    redis: redis.Redis | None
    http: httpx.AsyncClient
    verifier: TokenVerifier
    internal_tokens: InternalTokenIssuer
    # Readiness checks a service adds (name -> "ok" or what is wrong), besides the database's
    # and Redis': the orchestrator's workflow engine, for example.
    readiness_checks: dict[str, Callable[[], str]] = field(default_factory=dict)


def get_state(request: Request) -> AppState:
    state: AppState = request.state.platform
    return state
