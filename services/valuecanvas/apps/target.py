"""Target agent (port 8081): turns opportunities into a business case: KPI targets, ROI, NPV and payback."""

from __future__ import annotations

from fastapi import APIRouter

from valuecanvas.core.settings import ServiceSettings


class TargetSettings(ServiceSettings):
    service_name: str = "target"
    port: int = 8081


# This service's own endpoints, on top of the shared ones.
ROUTERS: list[APIRouter] = []
