"""API gateway: the only public entry: JWT / API-key auth, routing, rate limits, CORS and validation."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import AnyHttpUrl, SecretStr

from valuecanvas.catalogue import catalogue
from valuecanvas.core.settings import ServiceSettings

SERVICE = catalogue()["api-gateway"]


class ApiGatewaySettings(ServiceSettings):
    service_name: str = SERVICE.name
    port: int = SERVICE.port

    # Supabase, when the platform runs on it (use_supabase): the project URL and its key.
    supabase_url: AnyHttpUrl | None = None
    supabase_service_role_key: SecretStr | None = None


# This service's own endpoints, on top of the shared ones.
ROUTERS: list[APIRouter] = []
