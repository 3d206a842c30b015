"""The orchestrator's process-wide objects, opened in the lifespan: the durable-workflow
engine (DBOS Transact, launched on the service's own event loop so that workflows and the
API share the pool and clients), the client webhooks are delivered with, and the settings.

DBOS is a process singleton, and so is this runtime: the workflow functions
(engine.py) are module-level, as DBOS requires, and reach the runtime with
:func:`current`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from importlib.metadata import version

import aiohttp
import httpx
from dbos import DBOS, DBOSConfig
from sqlalchemy.engine import make_url
from starlette.requests import Request

from valuecanvas.core.db import check_database
from valuecanvas.core.logging import get_logger
from valuecanvas.core.requestid import create_http_client, request_id_trace_config
from valuecanvas.core.state import AppState
from valuecanvas.orchestrator.settings import OrchestratorSettings

_log = get_logger("valuecanvas.orchestrator")
RUNTIME_STATE = "orchestrator"


@dataclass
class OrchestratorRuntime:
    state: AppState
    settings: OrchestratorSettings
    webhooks: httpx.AsyncClient
    # The agents' client: aiohttp, several times httpx's throughput here (docs/benchmarks.md),
    # with the request id passed on as every service's client does.
    agents: aiohttp.ClientSession
    engine_ready: asyncio.Event = field(default_factory=asyncio.Event)
    engine_error: str = "starting"

    def engine_status(self) -> str:
        return "ok" if self.engine_ready.is_set() else f"not launched: {self.engine_error}"

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
            # No "select 1" before each checkout (a round trip per checkpoint): a
            # connection the server dropped fails its statement, and DBOS retries that
            # on a new one. Connections are renewed every five minutes anyway.
            "pool_pre_ping": False,
            "pool_recycle": 300,
        },
        "max_executor_threads": settings.orchestrator_engine_threads,
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


async def launch_engine(runtime: OrchestratorRuntime) -> None:
    """Launch DBOS once the database answers (the service starts, and reports not ready,
    while it does not). Launch runs on this loop's thread, so that the engine runs
    workflows, resumed ones included, on this loop, beside the API."""
    settings = runtime.settings
    wait = 0.5
    while True:
        try:
            await check_database(runtime.state.pool, settings.database_connect_timeout_seconds)
            DBOS(config=engine_config(settings))
            DBOS.launch()  # creates or migrates the engine's schema; resumes pending runs
        except Exception as exc:  # the database, or the engine's role or schema: said, retried
            runtime.engine_error = f"{type(exc).__name__}: {str(exc)[:200]}"
            _log.warning("workflow engine not launched", error=runtime.engine_error,
                         retry_seconds=wait)  # fmt: skip
            DBOS.destroy(destroy_registry=False)
            await asyncio.sleep(wait)
            wait = min(wait * 2, 10.0)
            continue
        runtime.engine_ready.set()
        _log.info("workflow engine launched", executor=settings.orchestrator_executor_id)
        from valuecanvas.orchestrator.engine import resume_unstarted

        try:
            await resume_unstarted(runtime)
        except Exception as exc:  # the next start tries again; nothing is lost meanwhile
            _log.error("runs not resumed", error=f"{type(exc).__name__}: {str(exc)[:200]}")
        return


@asynccontextmanager
async def lifespan_extension(state: AppState) -> AsyncIterator[Mapping[str, object]]:
    global _current
    settings = state.settings
    assert isinstance(settings, OrchestratorSettings)
    webhooks = webhook_client(settings)
    agents = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=256, limit_per_host=0, keepalive_timeout=30),
        trust_env=False, trace_configs=[request_id_trace_config()],
    )  # fmt: skip
    runtime = OrchestratorRuntime(state=state, settings=settings, webhooks=webhooks, agents=agents)
    _current = runtime
    from valuecanvas.orchestrator import engine  # noqa: F401 (registers the workflow function)

    state.readiness_checks["engine"] = runtime.engine_status
    launcher = asyncio.create_task(launch_engine(runtime))
    try:
        yield {RUNTIME_STATE: runtime}
    finally:
        launcher.cancel()
        with suppress(asyncio.CancelledError):
            await launcher
        if runtime.engine_ready.is_set():
            DBOS.destroy(destroy_registry=False)
        await webhooks.aclose()
        await agents.close()
        _current = None
