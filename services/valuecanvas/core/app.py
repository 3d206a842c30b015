"""The app factory every service uses: a service's definition (its settings class,
routers, lifespan additions, hot routes) becomes an ASGI app with the shared state,
endpoints and middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import redis.asyncio as redis
from fastapi import APIRouter, FastAPI
from fastapi_offline import FastAPIOffline
from starlette.middleware import Middleware

from valuecanvas.core.auth import UnauthorizedError, build_verifier, unauthorized_handler
from valuecanvas.core.db import create_pool
from valuecanvas.core.errors import install_problem_handlers, problems_in_openapi
from valuecanvas.core.hotpath import HotHandler, HotPathMiddleware
from valuecanvas.core.identity import InternalTokenIssuer
from valuecanvas.core.logging import get_logger
from valuecanvas.core.metrics import ServiceMetrics
from valuecanvas.core.middleware import RequestMiddleware
from valuecanvas.core.probes import PROBE_PATHS, shared_router
from valuecanvas.core.requestid import create_http_client
from valuecanvas.core.settings import ServiceSettings
from valuecanvas.core.state import AppState

_log = get_logger("valuecanvas.app")


# What a service adds to the lifespan: given the shared state, it opens its own objects and
# yields them by name; each is then ``request.state.<name>``, read through a typed accessor
# in the service's package (for example ``llm_proxy.runtime.runtime_of``).
Extension = Callable[[AppState], AbstractAsyncContextManager[Mapping[str, object]]]


@dataclass(frozen=True)
class ServiceDefinition:
    """What a service's ``app.py`` declares (``DEFINITION``), and all the factory needs
    besides the catalogue entry: its settings class, its routers, what it adds to the
    lifespan, and the routes served past FastAPI's routing (see HotPathMiddleware)."""

    settings: type[ServiceSettings]
    routers: Sequence[APIRouter] = ()
    extension: Extension | None = None
    hot_routes: Mapping[tuple[str, str], HotHandler] | None = None
    # Middleware of its own (inner first), inside the shared request middleware.
    middleware: Callable[[ServiceSettings], Sequence[Middleware]] | None = None
    # Adds to the OpenAPI document what FastAPI cannot see (the gateway's routed paths).
    document: Callable[[ServiceSettings, dict[str, Any]], None] | None = None


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    extension: Extension | None = None,
    hot_routes: Mapping[tuple[str, str], HotHandler] | None = None,
    middleware: Sequence[Middleware] = (),
    document: Callable[[dict[str, Any]], None] | None = None,
) -> FastAPI:
    """Build one service's ASGI app. Settings are validated before this is called."""
    metrics = ServiceMetrics(settings.service_name)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, object]]:
        pool = await create_pool(
            str(settings.database_url),
            max_size=settings.database_pool_max_size,
            connect_timeout=settings.database_connect_timeout_seconds,
        )
        # A blocking pool: past its size a request waits (up to 2 s) for a connection
        # instead of failing at once (redis-py's default pool raises at 100 in use).
        redis_client = (
            redis.Redis.from_pool(  # the client owns the pool: aclose() closes both
                redis.BlockingConnectionPool.from_url(
                    str(settings.redis_url),
                    max_connections=settings.redis_pool_max_size,
                    timeout=2,
                    socket_connect_timeout=2,
                    socket_timeout=5,
                )
            )
            if settings.redis_url
            else None
        )
        http = create_http_client(timeout=httpx.Timeout(30.0, connect=5.0))
        state = AppState(
            settings=settings,
            metrics=metrics,
            pool=pool,
            redis=redis_client,
            http=http,
            verifier=build_verifier(settings, http),
            internal_tokens=InternalTokenIssuer(
                service=settings.service_name,
                secret=settings.internal_token_secret.get_secret_value(),
                ttl_seconds=settings.internal_token_ttl_seconds,
            ),
        )
        _log.info("started", environment=settings.environment.value, port=settings.port)
        try:
            if extension is None:
                yield {"platform": state}
            else:
                async with extension(state) as extra:
                    yield {**extra, "platform": state}
        finally:
            await http.aclose()
            if redis_client is not None:
                await redis_client.aclose()
            await pool.close()
            _log.info("stopped")

    # Swagger UI and ReDoc from the package's own copies of their assets: /docs works offline.
    app = FastAPIOffline(title=title, description=description, version="0.1.0", lifespan=lifespan)
    install_problem_handlers(app)
    _document_problems(app, document)
    app.add_exception_handler(UnauthorizedError, unauthorized_handler)
    app.include_router(shared_router())
    for router in routers:
        app.include_router(router)
    for layer in middleware:
        app.add_middleware(layer.cls, *layer.args, **layer.kwargs)
    if hot_routes:
        app.add_middleware(HotPathMiddleware, routes=hot_routes)  # inside RequestMiddleware
    app.add_middleware(RequestMiddleware, metrics=metrics, router_app=app, quiet_paths=PROBE_PATHS)
    return app


def _document_problems(app: FastAPI, document: Callable[[dict[str, Any]], None] | None) -> None:
    """The app's OpenAPI document, with the service's additions and every error response a
    problem (built once)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        first = app.openapi_schema is None
        schema = build()
        if first and document is not None:
            document(schema)
        return problems_in_openapi(schema) if first else schema

    app.openapi = openapi  # type: ignore[method-assign]
