"""Realization agent (port 8082): tracks realized value against targets from KPI measurements."""

from __future__ import annotations

from fastapi import APIRouter

from valuecanvas.core.settings import ServiceSettings


class RealizationSettings(ServiceSettings):
    service_name: str = "realization"
    port: int = 8082


# This service's own endpoints, on top of the shared ones.
ROUTERS: list[APIRouter] = []
