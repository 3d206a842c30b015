"""The realization service's wiring: what ``valuecanvas serve realization`` builds."""

from __future__ import annotations

from valuecanvas.core.agent import agent_router
from valuecanvas.core.app import ServiceDefinition
from valuecanvas.realization.agent import REALIZATION
from valuecanvas.realization.measurements import router as measurements
from valuecanvas.realization.settings import RealizationSettings

DEFINITION = ServiceDefinition(
    settings=RealizationSettings, routers=[agent_router(REALIZATION), measurements]
)
