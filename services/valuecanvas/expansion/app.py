"""The expansion service's wiring: what ``valuecanvas serve expansion`` builds."""

from __future__ import annotations

from valuecanvas.core.app import ServiceDefinition
from valuecanvas.expansion.settings import ExpansionSettings

# Its own routers join the shared ones (probes, /v1/whoami) as its endpoints arrive.
DEFINITION = ServiceDefinition(settings=ExpansionSettings)
