"""The integrity service's wiring: what ``valuecanvas serve integrity`` builds."""

from __future__ import annotations

from valuecanvas.core.app import ServiceDefinition
from valuecanvas.integrity.settings import IntegritySettings

# Its own routers join the shared ones (probes, /v1/whoami) as its endpoints arrive.
DEFINITION = ServiceDefinition(settings=IntegritySettings)
