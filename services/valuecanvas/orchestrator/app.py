"""The orchestrator service's wiring: what ``valuecanvas serve orchestrator`` builds."""

from __future__ import annotations

from valuecanvas.core.app import ServiceDefinition
from valuecanvas.orchestrator.api import ROUTERS
from valuecanvas.orchestrator.runtime import lifespan_extension
from valuecanvas.orchestrator.settings import OrchestratorSettings

DEFINITION = ServiceDefinition(
    settings=OrchestratorSettings, routers=ROUTERS, extension=lifespan_extension
)
