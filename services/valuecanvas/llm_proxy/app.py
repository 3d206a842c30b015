"""The llm-proxy's wiring: what ``valuecanvas serve llm-proxy`` builds."""

from __future__ import annotations

from valuecanvas.core.app import ServiceDefinition
from valuecanvas.llm_proxy.api import ROUTERS
from valuecanvas.llm_proxy.api.completions import chat_completions
from valuecanvas.llm_proxy.runtime import lifespan_extension
from valuecanvas.llm_proxy.settings import LlmProxySettings

DEFINITION = ServiceDefinition(
    settings=LlmProxySettings,
    routers=ROUTERS,
    extension=lifespan_extension,
    # Served past FastAPI's routing layers (the same handler; see HotPathMiddleware).
    hot_routes={("POST", "/v1/chat/completions"): chat_completions},
)
