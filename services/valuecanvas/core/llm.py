"""How an agent asks the LLM: only through the llm-proxy, as the run's user and organization
(an internal token minted for them), so the proxy's limits and ledger see who asked.

The tokens and cost of every answer are added to the run (RunContext), which the audit row
records. ``offline`` says the answer came from the proxy's offline provider (no key is
configured): a placeholder, not a model's work, so the caller uses its deterministic path.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from valuecanvas.core.agent import RunContext
from valuecanvas.core.identity import Identity
from valuecanvas.core.settings import AgentSettings
from valuecanvas.core.state import get_state


class LlmUnavailableError(Exception):
    """The llm-proxy did not answer, or refused (rate limit, every provider down)."""


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    offline: bool


async def chat(
    context: RunContext, messages: list[dict[str, str]], *,
    response_format: dict[str, Any] | None = None, max_tokens: int = 1500,
) -> Completion:  # fmt: skip
    state = get_state(context.request)
    settings = state.settings
    assert isinstance(settings, AgentSettings)
    caller = context.caller
    token = state.internal_tokens.mint(
        Identity(
            user_id=caller.user_id,
            organization_id=caller.organization_id,
            role="authenticated",
            via="internal_token",
        )
    )
    body: dict[str, Any] = {
        "model": settings.agent_llm_model, "messages": messages, "max_tokens": max_tokens,
        "temperature": 0,
    }  # fmt: skip
    if response_format is not None:
        body["response_format"] = response_format
    try:
        response = await state.http.post(
            f"{settings.service_url('llm-proxy')}/v1/chat/completions", json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=settings.agent_llm_timeout_seconds,
        )  # fmt: skip
    except httpx.TransportError as exc:
        raise LlmUnavailableError(f"the llm-proxy did not answer: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise LlmUnavailableError(f"the llm-proxy answered {response.status_code}")
    answer = response.json()
    usage = answer.get("usage") or {}
    context.prompt_tokens += int(usage.get("prompt_tokens") or 0)
    context.completion_tokens += int(usage.get("completion_tokens") or 0)
    with suppress(InvalidOperation):
        context.cost_usd += float(Decimal(response.headers.get("X-ValueCanvas-Cost-Usd", "0")))
    model = str(answer.get("model") or settings.agent_llm_model)
    context.model = model
    choices = answer.get("choices") or [{}]
    text = str((choices[0].get("message") or {}).get("content") or "")
    return Completion(text=text, model=model, offline=answer.get("system_fingerprint") == "offline")
