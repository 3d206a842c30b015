"""The target service's wiring: what ``valuecanvas serve target`` builds."""

from __future__ import annotations

from valuecanvas.core.app import ServiceDefinition
from valuecanvas.target.settings import TargetSettings

# Its own routers join the shared ones (probes, /v1/whoami) as its endpoints arrive.
DEFINITION = ServiceDefinition(settings=TargetSettings)
