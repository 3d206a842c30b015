"""Target agent: turns opportunities into a business case: KPI targets, ROI, NPV and payback."""

from __future__ import annotations

from fastapi import APIRouter

from valuecanvas.catalogue import catalogue
from valuecanvas.core.settings import ServiceSettings

SERVICE = catalogue()["target"]


class TargetSettings(ServiceSettings):
    service_name: str = SERVICE.name
    port: int = SERVICE.port


# This service's own endpoints, on top of the shared ones.
ROUTERS: list[APIRouter] = []
