"""LLM proxy: the only holder of provider keys: Together first, OpenAI as fallback."""

from __future__ import annotations

from fastapi import APIRouter

from valuecanvas.llm.api import chat_completions
from valuecanvas.llm.api import router as llm_router
from valuecanvas.llm.runtime import lifespan_extension
from valuecanvas.llm.settings import SERVICE, LlmProxySettings

__all__ = ["EXTENSION", "HOT_ROUTES", "ROUTERS", "SERVICE", "LlmProxySettings"]

# This service's own endpoints, on top of the shared ones.
ROUTERS: list[APIRouter] = [llm_router]
EXTENSION = lifespan_extension
# Served past FastAPI's routing layers (the same handler; see HotPathMiddleware).
HOT_ROUTES = {("POST", "/v1/chat/completions"): chat_completions}
