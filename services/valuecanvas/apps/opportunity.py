"""Opportunity agent: finds value opportunities in an account's discovery notes and profile."""

from __future__ import annotations

from fastapi import APIRouter

from valuecanvas.catalogue import catalogue
from valuecanvas.core.settings import ServiceSettings

SERVICE = catalogue()["opportunity"]


class OpportunitySettings(ServiceSettings):
    service_name: str = SERVICE.name
    port: int = SERVICE.port


# This service's own endpoints, on top of the shared ones.
ROUTERS: list[APIRouter] = []
