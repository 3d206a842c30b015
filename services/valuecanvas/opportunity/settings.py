"""The opportunity service's settings, read from the environment and validated at start."""

from __future__ import annotations

from valuecanvas.catalogue import catalogue
from valuecanvas.core.settings import AgentSettings

SERVICE = catalogue()["opportunity"]


class OpportunitySettings(AgentSettings):
    service_name: str = SERVICE.name
    port: int = SERVICE.port
