"""Integrity agent: checks other agents' output: numbers recomputed, claims backed, policies enforced."""

from __future__ import annotations

from fastapi import APIRouter

from valuecanvas.catalogue import catalogue
from valuecanvas.core.settings import ServiceSettings

SERVICE = catalogue()["integrity"]


class IntegritySettings(ServiceSettings):
    service_name: str = SERVICE.name
    port: int = SERVICE.port


# This service's own endpoints, on top of the shared ones.
ROUTERS: list[APIRouter] = []
