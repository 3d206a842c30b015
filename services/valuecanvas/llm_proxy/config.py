"""Providers, the model map and limits, built from the llm-proxy's settings.

Providers are OpenAI-compatible HTTP APIs tried in order: Together first, OpenAI as the
fallback, then any configured extra (vLLM, Ollama, llama.cpp, ...). A provider without a
key is not used. With none usable, the offline provider answers: deterministic, no
network, free, and labelled offline everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from pydantic import AnyHttpUrl, BaseModel, Field, SecretStr

from valuecanvas.llm_proxy.pricing import Price, PriceOverride, resolve_price

OFFLINE = "offline"

# Logical model -> provider -> the provider's model name.
DEFAULT_MODEL_MAP: dict[str, dict[str, str]] = {
    "valuecanvas-default": {
        "together": "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "openai": "gpt-4o-mini",
    },
    "valuecanvas-fast": {
        "together": "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo",
        "openai": "gpt-4o-mini",
    },
    "valuecanvas-reasoning": {
        "together": "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "openai": "gpt-4o",
    },
}


class ExtraProvider(BaseModel):
    """Any other OpenAI-compatible endpoint, in LLM_EXTRA_PROVIDERS (a JSON list)."""

    name: str = Field(pattern=r"^[a-z0-9_-]{1,50}$")
    base_url: AnyHttpUrl
    api_key: SecretStr | None = None


@dataclass(frozen=True)
class Provider:
    name: str
    base_url: str
    api_key: SecretStr | None
    models: dict[str, str]  # logical -> provider model
    prices: dict[str, Price] = field(default_factory=dict)  # provider model -> price

    @property
    def offline(self) -> bool:
        return self.name == OFFLINE


class ConfigurationError(ValueError):
    pass


def build_providers(
    *,
    together_api_key: SecretStr | None,
    together_base_url: str,
    openai_api_key: SecretStr | None,
    openai_base_url: str,
    extra: list[ExtraProvider],
    order: list[str] | None,
    model_map: dict[str, dict[str, str]],
    price_overrides: dict[str, PriceOverride],
) -> list[Provider]:
    """The providers to try, in order; every mapped model priced or a ConfigurationError."""
    candidates: dict[str, tuple[str, SecretStr | None]] = {}
    if together_api_key is not None:
        candidates["together"] = (together_base_url, together_api_key)
    if openai_api_key is not None:
        candidates["openai"] = (openai_base_url, openai_api_key)
    for provider in extra:
        candidates[provider.name] = (str(provider.base_url).rstrip("/"), provider.api_key)
    unknown = sorted(set(order or []) - set(candidates) - {"together", "openai"})
    if unknown:
        raise ConfigurationError(
            f"LLM_PROVIDER_ORDER names unknown provider(s): {', '.join(unknown)}"
        )
    names = [name for name in (order or list(candidates)) if name in candidates]
    if not names:
        return [
            Provider(OFFLINE, "", None, {logical: f"{OFFLINE}-{logical}" for logical in model_map})
        ]

    providers = []
    for name in names:
        base_url, key = candidates[name]
        models = {
            logical: mapping[name] for logical, mapping in model_map.items() if name in mapping
        }
        prices = {}
        for model in sorted(set(models.values())):
            try:
                prices[model] = resolve_price(name, model, price_overrides)
            except ValueError as exc:
                raise ConfigurationError(str(exc)) from None
        providers.append(Provider(name, base_url.rstrip("/"), key, models, prices))
    return providers


@dataclass(frozen=True)
class Limits:
    user_per_hour: int
    organization_per_hour: int
    organization_overrides: dict[UUID, int]
    window_seconds: int = 3600

    def for_organization(self, organization: UUID | None) -> int | None:
        if organization is None:
            return None
        return self.organization_overrides.get(organization, self.organization_per_hour)
