"""The api-gateway service's wiring: what ``valuecanvas serve api-gateway`` builds."""

from __future__ import annotations

from valuecanvas.api_gateway.settings import ApiGatewaySettings
from valuecanvas.core.app import ServiceDefinition

# Its own routers join the shared ones (probes, /v1/whoami) as its endpoints arrive.
DEFINITION = ServiceDefinition(settings=ApiGatewaySettings)
