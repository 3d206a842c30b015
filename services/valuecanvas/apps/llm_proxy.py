"""LLM proxy (port 8086): the only holder of provider keys: Together first, OpenAI as fallback."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import SecretStr

from valuecanvas.core.settings import ServiceSettings


class LlmProxySettings(ServiceSettings):
    service_name: str = "llm-proxy"
    port: int = 8086

    # Provider keys live only here. With neither set, the offline provider answers.
    together_api_key: SecretStr | None = None
    openai_api_key: SecretStr | None = None


# This service's own endpoints, on top of the shared ones.
ROUTERS: list[APIRouter] = []
