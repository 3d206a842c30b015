"""The api-gateway service's wiring: what ``valuecanvas serve api-gateway`` builds.

Outside in: the shared request middleware (request id, log line, metrics), the security
headers, CORS, then the gateway pipeline (authenticate, limit, forward or hand over) in
front of the platform API's routers."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware import Middleware

from valuecanvas.api_gateway.api import ROUTERS
from valuecanvas.api_gateway.document import document_routes
from valuecanvas.api_gateway.edge import edge_middleware
from valuecanvas.api_gateway.pipeline import GatewayMiddleware
from valuecanvas.api_gateway.runtime import lifespan_extension
from valuecanvas.api_gateway.settings import ApiGatewaySettings
from valuecanvas.core.app import ServiceDefinition
from valuecanvas.core.settings import ServiceSettings


def middleware(settings: ServiceSettings) -> Sequence[Middleware]:
    assert isinstance(settings, ApiGatewaySettings)
    return [
        Middleware(GatewayMiddleware),
        *edge_middleware(settings.gateway_cors_origins, settings.gateway_hsts_seconds),
    ]


DEFINITION = ServiceDefinition(
    settings=ApiGatewaySettings,
    routers=ROUTERS,
    extension=lifespan_extension,
    middleware=middleware,
    document=document_routes,
)
