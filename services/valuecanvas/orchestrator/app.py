"""The orchestrator service's wiring: what ``valuecanvas serve orchestrator`` builds."""

from __future__ import annotations

from valuecanvas.core.app import ServiceDefinition
from valuecanvas.orchestrator.settings import OrchestratorSettings

# Its own routers join the shared ones (probes, /v1/whoami) as its endpoints arrive.
DEFINITION = ServiceDefinition(settings=OrchestratorSettings)
