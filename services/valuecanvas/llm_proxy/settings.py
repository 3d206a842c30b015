"""The llm-proxy's settings: provider keys (held by this service only), limits, retries,
the ledger. Validated at start; the providers are built and priced once, here."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from pydantic import AnyHttpUrl, Field, PrivateAttr, SecretStr, model_validator

from valuecanvas.catalogue import catalogue
from valuecanvas.core.settings import ServiceSettings
from valuecanvas.llm_proxy.config import (
    DEFAULT_MODEL_MAP,
    ConfigurationError,
    ExtraProvider,
    Limits,
    Provider,
    build_providers,
)
from valuecanvas.llm_proxy.pricing import PriceOverride

SERVICE = catalogue()["llm-proxy"]


class LlmProxySettings(ServiceSettings):
    service_name: str = SERVICE.name
    port: int = SERVICE.port

    # Provider keys live only here. With no usable provider, the offline provider answers.
    together_api_key: SecretStr | None = None
    together_base_url: AnyHttpUrl = AnyHttpUrl("https://api.together.xyz/v1")
    openai_api_key: SecretStr | None = None
    openai_base_url: AnyHttpUrl = AnyHttpUrl("https://api.openai.com/v1")
    llm_extra_providers: list[ExtraProvider] = Field(default_factory=list)
    llm_provider_order: list[str] | None = None
    llm_models: dict[str, dict[str, str]] = Field(default_factory=lambda: DEFAULT_MODEL_MAP)
    llm_price_overrides: dict[str, PriceOverride] = Field(default_factory=dict)

    # Limits: per user and per organization, per hour, shared by every replica via Redis.
    llm_user_limit_per_hour: int = Field(default=100, ge=1)
    llm_org_limit_per_hour: int = Field(default=1000, ge=1)
    llm_org_limits: dict[UUID, int] = Field(default_factory=dict)

    # Retries per provider, then the next provider; the breaker stops a failing provider.
    llm_retry_attempts: int = Field(default=3, ge=1, le=10)
    llm_retry_initial_seconds: float = Field(default=0.2, gt=0, le=10)
    llm_retry_max_seconds: float = Field(default=8.0, gt=0, le=120)
    llm_upstream_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    llm_first_byte_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    llm_breaker_failures: int = Field(default=5, ge=1)
    llm_breaker_cooldown_seconds: float = Field(default=30.0, gt=0)
    # How often the ledger-backlog and breaker-state gauges are refreshed.
    llm_metrics_interval_seconds: float = Field(default=2.0, gt=0, le=60)

    llm_max_body_bytes: int = Field(default=1_000_000, ge=1024)
    llm_log_bodies: bool = False

    # The ledger: a Redis stream when REDIS_URL is set, else this local journal.
    llm_ledger_stream: str = "valuecanvas:llm-ledger"
    llm_ledger_journal: Path = Path(".state/llm-ledger.jsonl")
    llm_ledger_claim_idle_seconds: float = Field(default=30.0, gt=0)

    # Built (and every mapped model priced) once, when the settings are validated.
    _providers: list[Provider] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _providers_priced(self) -> LlmProxySettings:
        try:
            self._providers = self._build_providers()
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None
        return self

    def providers(self) -> list[Provider]:
        return self._providers

    def _build_providers(self) -> list[Provider]:
        return build_providers(
            together_api_key=self.together_api_key,
            together_base_url=str(self.together_base_url),
            openai_api_key=self.openai_api_key,
            openai_base_url=str(self.openai_base_url),
            extra=self.llm_extra_providers,
            order=self.llm_provider_order,
            model_map=self.llm_models,
            price_overrides=self.llm_price_overrides,
        )

    def limits(self) -> Limits:
        return Limits(
            self.llm_user_limit_per_hour, self.llm_org_limit_per_hour, self.llm_org_limits
        )
