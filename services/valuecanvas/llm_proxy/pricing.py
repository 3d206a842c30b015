"""What a completion costs: the maintained ``genai-prices`` data, or a configured override.

A model with no known price is refused when the configuration loads: a proxy that bills
an unknown model at $0 hides spend. genai-prices is asked with each request's real usage,
so tiered prices (long prompts priced higher) come out right.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage, calc_price
from pydantic import BaseModel, Field

MILLION = Decimal(1_000_000)


class PriceOverride(BaseModel):
    """USD per million tokens, for models the price data lacks (or self-hosted ones at 0)."""

    input_per_million: Decimal = Field(ge=0)
    output_per_million: Decimal = Field(ge=0)


class UnknownPriceError(ValueError):
    pass


@dataclass(frozen=True)
class Price:
    provider: str
    model: str
    override: PriceOverride | None = None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        if self.override is not None:
            return (
                self.override.input_per_million * prompt_tokens
                + self.override.output_per_million * completion_tokens
            ) / MILLION
        return _genai_price(self.provider, self.model, prompt_tokens, completion_tokens)


@lru_cache(maxsize=65_536)
def _genai_price(provider: str, model: str, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """genai-prices' answer, remembered: the lookup costs ~0.4 ms and usages repeat."""
    usage = Usage(input_tokens=prompt_tokens, output_tokens=completion_tokens)
    total: Decimal = calc_price(usage, model, provider_id=provider).total_price
    return total


def resolve_price(provider: str, model: str, overrides: dict[str, PriceOverride]) -> Price:
    """The price of ``model`` at ``provider``; overrides are keyed ``provider/model``."""
    override = overrides.get(f"{provider}/{model}")
    price = Price(provider, model, override)
    try:
        price.cost(1, 1)
    except LookupError:
        raise UnknownPriceError(
            f"no price is known for model {model!r} at provider {provider!r}; "
            f"add it to LLM_PRICE_OVERRIDES as {provider}/{model}"
        ) from None
    return price
