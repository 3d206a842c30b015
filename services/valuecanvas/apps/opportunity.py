"""Opportunity agent (port 8080): finds value opportunities in an account's discovery notes and profile."""

from __future__ import annotations

from fastapi import APIRouter

from valuecanvas.core.settings import ServiceSettings


class OpportunitySettings(ServiceSettings):
    service_name: str = "opportunity"
    port: int = 8080


# This service's own endpoints, on top of the shared ones.
ROUTERS: list[APIRouter] = []
