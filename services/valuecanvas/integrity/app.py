"""The integrity service's wiring: what ``valuecanvas serve integrity`` builds."""

from __future__ import annotations

from valuecanvas.core.agent import agent_router
from valuecanvas.core.app import ServiceDefinition
from valuecanvas.integrity.agent import INTEGRITY
from valuecanvas.integrity.settings import IntegritySettings

DEFINITION = ServiceDefinition(settings=IntegritySettings, routers=[agent_router(INTEGRITY)])
