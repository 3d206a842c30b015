"""The api-gateway service's settings, read from the environment and validated at start.

Per environment: the route table (GATEWAY_ROUTES, else the package's routes.yaml), the
limits, the CORS allow-list and HSTS. The inventories and the Helm values set them.
"""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator

from valuecanvas.api_gateway.routes import Route, default_routes
from valuecanvas.catalogue import catalogue
from valuecanvas.core.settings import ServiceSettings

SERVICE = catalogue()["api-gateway"]


class ApiGatewaySettings(ServiceSettings):
    service_name: str = SERVICE.name
    port: int = SERVICE.port

    # Supabase, when the platform runs on it (aws_rds_use_supabase): the project URL and its key.
    supabase_url: AnyHttpUrl | None = None
    supabase_service_role_key: SecretStr | None = None

    # Routing: the public paths and the service each goes to (routes.yaml by default). Where
    # a service is: ServiceSettings.service_url.
    gateway_routes: list[Route] = Field(default_factory=default_routes)
    gateway_max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    gateway_retry_attempts: int = Field(default=2, ge=1, le=5)
    gateway_breaker_failures: int = Field(default=5, ge=1)
    gateway_breaker_cooldown_seconds: float = Field(default=15.0, gt=0)

    # Rate limits per minute (sliding window, Redis, shared by every replica).
    gateway_limit_window_seconds: int = Field(default=60, ge=1, le=3600)
    gateway_limit_per_api_key: int = Field(default=600, ge=1)
    gateway_limit_per_user: int = Field(default=600, ge=1)
    gateway_limit_per_organization: int = Field(default=3000, ge=1)
    gateway_limit_per_ip: int = Field(default=120, ge=1)

    # API keys: how long a verified key is trusted before it is read again (revocation and
    # expiry take effect within this), and how often last_used_at is written.
    gateway_api_key_cache_seconds: float = Field(default=5.0, ge=0, le=10)
    gateway_last_used_flush_seconds: float = Field(default=5.0, gt=0, le=300)

    # CORS: exact origins allowed to call from a browser (credentials only for these).
    gateway_cors_origins: list[str] = Field(default_factory=list)
    # Strict-Transport-Security is sent only where TLS ends in front of the gateway.
    gateway_hsts_seconds: int = Field(default=0, ge=0, le=63_072_000)

    @field_validator("gateway_cors_origins")
    @classmethod
    def _exact_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "*" or not origin.startswith(("https://", "http://")):
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port]; no '*')")
            if origin.rstrip("/") != origin or origin.count("/") != 2:
                raise ValueError(f"{origin!r} is not an origin: no path or trailing slash")
        return value

    @field_validator("gateway_routes")
    @classmethod
    def _known_upstreams(cls, value: list[Route]) -> list[Route]:
        services = catalogue()
        for route in value:
            if route.service not in services:
                raise ValueError(f"route {route.path} names unknown service {route.service!r}")
        paths = [route.path for route in value]
        if len(paths) != len(set(paths)):
            raise ValueError("two routes have the same path")
        return value
