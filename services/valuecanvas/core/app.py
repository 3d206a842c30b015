"""The app factory every service uses: lifespan-managed clients as typed state, the shared
endpoints (/healthz, /readyz, /metrics, /v1/whoami) and the shared middleware."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

import httpx
import redis.asyncio as redis
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from valuecanvas.core.db import Pool, caller_transaction, check_database, create_pool
from valuecanvas.core.identity import (
    AuthError,
    Identity,
    InternalTokenIssuer,
    JwksCache,
    TokenVerifier,
)
from valuecanvas.core.logging import get_logger
from valuecanvas.core.metrics import ServiceMetrics
from valuecanvas.core.middleware import RequestMiddleware
from valuecanvas.core.requestid import create_http_client
from valuecanvas.core.settings import ServiceSettings

_log = get_logger("valuecanvas.app")
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


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


def get_state(request: Request) -> AppState:
    state: AppState = request.state.platform
    return state


def build_verifier(
    settings: ServiceSettings, http: httpx.AsyncClient | None = None
) -> TokenVerifier:
    return TokenVerifier(
        algorithms=frozenset(settings.jwt_algorithms),
        audience=settings.jwt_audience,
        secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
        jwks=JwksCache(str(settings.jwt_jwks_url), http=http) if settings.jwt_jwks_url else None,
        issuer=settings.jwt_issuer,
        leeway_seconds=settings.jwt_leeway_seconds,
        internal_secret=settings.internal_token_secret.get_secret_value(),
    )


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str


class ErrorBody(BaseModel):
    """Every service's error body (OpenAI's shape)."""

    error: ErrorDetail


def error_doc(description: str) -> dict[str, Any]:
    """An error response for a route's ``responses``: documented with the error body."""
    return {"description": description, "model": ErrorBody}


def error_body(kind: str, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, used by every service."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(
    status: int,
    kind: str,
    code: str,
    message: str,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(kind, code, message, param), status_code=status, headers=headers)


class UnauthorizedError(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


async def require_identity(request: Request) -> Identity:
    """The verified caller; 401 with the reason otherwise (before any handler work)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("missing bearer token")
    try:
        return await get_state(request).verifier.verify(token.strip())
    except AuthError as exc:
        raise UnauthorizedError(exc.reason) from None


# Declares the bearer scheme in the OpenAPI document; the check itself is require_identity's
# (also called by HotPathMiddleware, where no dependency runs).
_BEARER = HTTPBearer(auto_error=False, description="A user JWT, or an internal token")


async def _caller(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
) -> Identity:
    return await require_identity(request)


Caller = Annotated[Identity, Depends(_caller)]
# What every route that takes a Caller may answer besides its own responses.
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: error_doc("no bearer token, or one that does not verify (the reason is given)")
}


async def _unauthorized_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, UnauthorizedError)
    return unauthorized_response(exc)


def unauthorized_response(exc: UnauthorizedError) -> JSONResponse:
    return error_response(
        401,
        "authentication_error",
        "invalid_token",
        exc.reason,
        headers={
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{exc.reason}"'
        },
    )


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
            response: Response = unauthorized_response(exc)
        else:
            response = await handler(request, caller)
        await response(scope, receive, send)


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


class Organization(BaseModel):
    id: UUID
    name: str


class WhoAmI(BaseModel):
    user_id: UUID | None
    organization_id: UUID | None
    role: str
    via: str
    actor: str | None
    organizations: list[Organization]


def _shared_router() -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", tags=["probes"], summary="Liveness: the process serves requests")
    async def healthz() -> Health:
        return Health(status="ok")

    @router.get(
        "/readyz",
        tags=["probes"],
        summary="Readiness: the database (and Redis, when configured) answer",
        responses={
            200: {"model": Readiness},
            503: {"model": Readiness, "description": "a dependency is unreachable; it is named"},
        },
    )
    async def readyz(request: Request) -> JSONResponse:
        state = get_state(request)
        timeout = state.settings.readiness_timeout_seconds
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(check_database(state.pool, timeout), timeout)
            checks["database"] = "ok"
        except Exception as exc:  # any failure means not ready; the reason is reported
            checks["database"] = f"unreachable: {type(exc).__name__}"
        if state.redis is not None:
            try:
                await asyncio.wait_for(state.redis.ping(), timeout)
                checks["redis"] = "ok"
            except Exception as exc:
                checks["redis"] = f"unreachable: {type(exc).__name__}"
        ready = all(value == "ok" for value in checks.values())
        if not ready:
            _log.warning("not ready", checks=checks)
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    @router.get(
        "/metrics",
        tags=["probes"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus' text exposition format",
                "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
            },
            404: error_doc("metrics are turned off (METRICS_ENABLED=false)"),
        },
    )
    async def metrics(request: Request) -> Response:
        state = get_state(request)
        if not state.settings.metrics_enabled:
            return error_response(404, "not_found", "metrics_disabled", "metrics are off")
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @router.get(
        "/v1/whoami",
        tags=["identity"],
        summary="The verified caller and the organizations row-level security lets it see",
        responses=UNAUTHORIZED,
    )
    async def whoami(request: Request, caller: Caller) -> WhoAmI:
        state = get_state(request)
        async with caller_transaction(state.pool, caller, metrics=state.metrics) as connection:
            rows = await connection.fetch("select id, name from public.organizations order by name")
        return WhoAmI(
            user_id=caller.user_id,
            organization_id=caller.organization_id,
            role=caller.role,
            via=caller.via,
            actor=caller.actor,
            organizations=[Organization(id=row["id"], name=row["name"]) for row in rows],
        )

    return router


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


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    extension: Extension | None = None,
    hot_routes: Mapping[tuple[str, str], HotHandler] | None = None,
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
        redis_client = (
            redis.from_url(str(settings.redis_url), socket_connect_timeout=2, socket_timeout=5)
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
    app.add_exception_handler(UnauthorizedError, _unauthorized_handler)
    app.include_router(_shared_router())
    for router in routers:
        app.include_router(router)
    if hot_routes:
        app.add_middleware(HotPathMiddleware, routes=hot_routes)  # inside RequestMiddleware
    app.add_middleware(RequestMiddleware, metrics=metrics, router_app=app, quiet_paths=PROBE_PATHS)
    return app
