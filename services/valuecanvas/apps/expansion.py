"""Expansion agent (port 8083): finds upsell and cross-sell opportunities from realization data."""

from __future__ import annotations

from fastapi import APIRouter

from valuecanvas.core.settings import ServiceSettings


class ExpansionSettings(ServiceSettings):
    service_name: str = "expansion"
    port: int = 8083


# This service's own endpoints, on top of the shared ones.
ROUTERS: list[APIRouter] = []
