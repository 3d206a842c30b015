"""Orchestrator: runs workflow definitions (DAGs of agent steps) durably."""

from __future__ import annotations

from fastapi import APIRouter

from valuecanvas.catalogue import catalogue
from valuecanvas.core.settings import ServiceSettings

SERVICE = catalogue()["orchestrator"]


class OrchestratorSettings(ServiceSettings):
    service_name: str = SERVICE.name
    port: int = SERVICE.port


# This service's own endpoints, on top of the shared ones.
ROUTERS: list[APIRouter] = []
