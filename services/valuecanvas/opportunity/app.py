"""The opportunity service's wiring: what ``valuecanvas serve opportunity`` builds."""

from __future__ import annotations

from valuecanvas.core.app import ServiceDefinition
from valuecanvas.opportunity.settings import OpportunitySettings

# Its own routers join the shared ones (probes, /v1/whoami) as its endpoints arrive.
DEFINITION = ServiceDefinition(settings=OpportunitySettings)
