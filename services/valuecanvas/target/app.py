"""The target service's wiring: what ``valuecanvas serve target`` builds."""

from __future__ import annotations

from valuecanvas.core.agent import agent_router
from valuecanvas.core.app import ServiceDefinition
from valuecanvas.target.agent import TARGET
from valuecanvas.target.settings import TargetSettings

DEFINITION = ServiceDefinition(settings=TargetSettings, routers=[agent_router(TARGET)])
