"""Integrity agent (port 8084): checks other agents' output: numbers recomputed, claims backed, policies enforced."""

from __future__ import annotations

from fastapi import APIRouter

from valuecanvas.core.settings import ServiceSettings


class IntegritySettings(ServiceSettings):
    service_name: str = "integrity"
    port: int = 8084


# This service's own endpoints, on top of the shared ones.
ROUTERS: list[APIRouter] = []
