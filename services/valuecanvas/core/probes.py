"""The endpoints every service has: /healthz, /readyz, /metrics and /v1/whoami."""

from __future__ import annotations

import asyncio
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from valuecanvas.core.auth import UNAUTHORIZED, Caller
from valuecanvas.core.db import caller_transaction, check_database, visible_organizations
from valuecanvas.core.errors import error_doc, error_response
from valuecanvas.core.logging import get_logger
from valuecanvas.core.state import get_state

_log = get_logger("valuecanvas.app")
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


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


def shared_router() -> APIRouter:
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
        for name, check in state.readiness_checks.items():
            checks[name] = check()
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
            rows = await visible_organizations(connection)
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
