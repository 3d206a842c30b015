"""The orchestrator service's settings, read from the environment and validated at start."""

from __future__ import annotations

import socket

from pydantic import Field, FilePath

from valuecanvas.catalogue import catalogue
from valuecanvas.core.settings import ServiceSettings

SERVICE = catalogue()["orchestrator"]


class OrchestratorSettings(ServiceSettings):
    service_name: str = SERVICE.name
    port: int = SERVICE.port

    # Each step's call to its agent: the time one attempt may take, and how often a
    # transient failure (no answer, 5xx, 429) is tried, with the wait doubling each time.
    orchestrator_step_timeout_seconds: float = Field(default=60.0, gt=0, le=900)
    orchestrator_step_attempts: int = Field(default=3, ge=1, le=10)
    orchestrator_retry_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    # The durable-workflow engine (DBOS): its tables' schema, the database role that owns
    # it (the login role must be a member), and this process's executor id. A restarted
    # process with the same id resumes the workflows it was running; locally and in a pod
    # that is the host name.
    orchestrator_system_schema: str = Field(default="dbos", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    orchestrator_database_role: str = Field(
        default="orchestrator", pattern=r"^[a-z_][a-z0-9_]{0,62}$"
    )
    orchestrator_executor_id: str = Field(
        default_factory=socket.gethostname, pattern=r"^[A-Za-z0-9._-]{1,100}$"
    )
    orchestrator_engine_pool_size: int = Field(default=20, ge=2, le=200)
    # The threads the engine's database calls run in. Few: they hold the GIL in turns, and
    # more of them spend the process's one core handing it over (docs/benchmarks.md).
    orchestrator_engine_threads: int = Field(default=4, ge=1, le=64)
    # Webhook deliveries: attempts (each recorded), the wait before the second (doubling),
    # one attempt's time, and an extra CA bundle to trust (a private CA; the tests' own).
    orchestrator_webhook_attempts: int = Field(default=5, ge=1, le=20)
    orchestrator_webhook_retry_interval_seconds: float = Field(default=2.0, gt=0, le=300)
    orchestrator_webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    orchestrator_webhook_ca_file: FilePath | None = None
    # How often the progress stream (server-sent events) looks for changes.
    orchestrator_events_poll_seconds: float = Field(default=0.5, ge=0.05, le=10)
