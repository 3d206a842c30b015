"""Orchestrator (port 8085): runs workflow definitions (DAGs of agent steps) durably."""

from __future__ import annotations

from fastapi import APIRouter

from valuecanvas.core.settings import ServiceSettings


class OrchestratorSettings(ServiceSettings):
    service_name: str = "orchestrator"
    port: int = 8085


# This service's own endpoints, on top of the shared ones.
ROUTERS: list[APIRouter] = []
