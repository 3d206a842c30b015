"""The realization service's wiring: what ``valuecanvas serve realization`` builds."""

from __future__ import annotations

from valuecanvas.core.app import ServiceDefinition
from valuecanvas.realization.settings import RealizationSettings

# Its own routers join the shared ones (probes, /v1/whoami) as its endpoints arrive.
DEFINITION = ServiceDefinition(settings=RealizationSettings)
