"""The llm-proxy's OpenAI-compatible API: /v1/chat/completions, /v1/models, /v1/usage."""

from __future__ import annotations

from fastapi import APIRouter

from valuecanvas.llm_proxy.api import completions, usage

ROUTERS: list[APIRouter] = [completions.router, usage.router]
