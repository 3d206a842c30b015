"""The orchestrator's process-wide objects, opened in the lifespan: the durable-workflow
engine (DBOS Transact, launched on the service's own event loop so that workflows and the
API share the pool and clients), the client webhooks are delivered with, and the settings.

DBOS is a process singleton, and so is this runtime: the workflow functions
(engine.py) are module-level, as DBOS requires, and reach the runtime with
:func:`current`.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import version

import httpx
from dbos import DBOS, DBOSConfig
from sqlalchemy.engine import make_url
from starlette.requests import Request

from valuecanvas.core.logging import get_logger
from valuecanvas.core.requestid import create_http_client
from valuecanvas.core.state import AppState
from valuecanvas.orchestrator.settings import OrchestratorSettings

_log = get_logger("valuecanvas.orchestrator")
RUNTIME_STATE = "orchestrator"


@dataclass
class OrchestratorRuntime:
    state: AppState
    settings: OrchestratorSettings
    webhooks: httpx.AsyncClient

    def agent_url(self, agent: str) -> str:
        return self.settings.service_url(agent)


_current: OrchestratorRuntime | None = None


def current() -> OrchestratorRuntime:
    if _current is None:
        raise RuntimeError("the orchestrator's runtime is not open (its lifespan has not run)")
    return _current


def engine_config(settings: OrchestratorSettings) -> DBOSConfig:
    """DBOS's configuration: its tables in their own schema, created by the orchestrator's
    database role (the login role sets it on the engine's connections only)."""
    url = make_url(str(settings.database_url)).set(drivername="postgresql+psycopg")
    return {
        "name": "valuecanvas-orchestrator",
        "system_database_url": url.render_as_string(hide_password=False),
        "dbos_system_schema": settings.orchestrator_system_schema,
        "sys_db_pool_size": settings.orchestrator_engine_pool_size,
        "db_engine_kwargs": {
            "connect_args": {"options": f"-c role={settings.orchestrator_database_role}"},
            "pool_size": settings.orchestrator_engine_pool_size,
        },
        # Workflows recover only on the version that started them: the package's version,
        # not DBOS's hash of the source, so a restart of the same release resumes them.
        "application_version": version("valuecanvas"),
        "executor_id": settings.orchestrator_executor_id,
        "log_level": "WARNING",
    }


def webhook_client(settings: OrchestratorSettings) -> httpx.AsyncClient:
    verify: ssl.SSLContext | bool = True
    if settings.orchestrator_webhook_ca_file is not None:
        verify = ssl.create_default_context()
        verify.load_verify_locations(cafile=str(settings.orchestrator_webhook_ca_file))
    return create_http_client(
        timeout=httpx.Timeout(settings.orchestrator_webhook_timeout_seconds, connect=5.0),
        verify=verify,
        follow_redirects=False,
    )


def runtime_of(request: Request) -> OrchestratorRuntime:
    runtime: OrchestratorRuntime = getattr(request.state, RUNTIME_STATE)
    return runtime


@asynccontextmanager
async def lifespan_extension(state: AppState) -> AsyncIterator[Mapping[str, object]]:
    global _current
    settings = state.settings
    assert isinstance(settings, OrchestratorSettings)
    webhooks = webhook_client(settings)
    _current = OrchestratorRuntime(state=state, settings=settings, webhooks=webhooks)
    from valuecanvas.orchestrator import engine  # registers the workflow functions

    DBOS(config=engine_config(settings))
    # On this loop: workflows resumed from an earlier run (recovery) and new ones alike run
    # here, beside the API. Launch creates or migrates the engine's schema.
    DBOS.launch()
    _log.info("engine launched", executor=settings.orchestrator_executor_id,
              workflow=engine.WORKFLOW_NAME)  # fmt: skip
    try:
        yield {RUNTIME_STATE: _current}
    finally:
        DBOS.destroy(destroy_registry=False)
        await webhooks.aclose()
        _current = None
