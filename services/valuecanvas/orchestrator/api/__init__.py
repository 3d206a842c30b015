"""The orchestrator's public API (through the gateway: docs/api.md)."""

from valuecanvas.orchestrator.api.definitions import router as definitions
from valuecanvas.orchestrator.api.runs import router as runs
from valuecanvas.orchestrator.api.value_cases import router as value_cases

ROUTERS = [value_cases, runs, definitions]
