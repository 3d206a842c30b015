"""The expansion service's wiring: what ``valuecanvas serve expansion`` builds."""

from __future__ import annotations

from valuecanvas.core.agent import agent_router
from valuecanvas.core.app import ServiceDefinition
from valuecanvas.expansion.agent import EXPANSION
from valuecanvas.expansion.settings import ExpansionSettings

DEFINITION = ServiceDefinition(settings=ExpansionSettings, routers=[agent_router(EXPANSION)])
