"""The realization service's settings, read from the environment and validated at start."""

from __future__ import annotations

from pydantic import Field

from valuecanvas.catalogue import catalogue
from valuecanvas.core.settings import AgentSettings

SERVICE = catalogue()["realization"]


class RealizationSettings(AgentSettings):
    service_name: str = SERVICE.name
    port: int = SERVICE.port

    # A KPI with no measurement for longer than this is flagged stale.
    realization_stale_days: int = Field(default=45, ge=1, le=365)
