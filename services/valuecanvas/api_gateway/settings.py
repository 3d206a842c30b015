"""The api-gateway service's settings, read from the environment and validated at start."""

from __future__ import annotations

from pydantic import AnyHttpUrl, SecretStr

from valuecanvas.catalogue import catalogue
from valuecanvas.core.settings import ServiceSettings

SERVICE = catalogue()["api-gateway"]


class ApiGatewaySettings(ServiceSettings):
    service_name: str = SERVICE.name
    port: int = SERVICE.port

    # Supabase, when the platform runs on it (aws_rds_use_supabase): the project URL and its key.
    supabase_url: AnyHttpUrl | None = None
    supabase_service_role_key: SecretStr | None = None
