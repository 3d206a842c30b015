"""The opportunity service's wiring: what ``valuecanvas serve opportunity`` builds."""

from __future__ import annotations

from valuecanvas.core.agent import agent_router
from valuecanvas.core.app import ServiceDefinition
from valuecanvas.opportunity.agent import OPPORTUNITY
from valuecanvas.opportunity.settings import OpportunitySettings

DEFINITION = ServiceDefinition(settings=OpportunitySettings, routers=[agent_router(OPPORTUNITY)])
