"""The business case in words. The LLM writes it from the computed numbers (it is told to
use only those); with the offline provider, a template does. Either way the integrity agent
checks every number in it against the case."""

from __future__ import annotations

from decimal import Decimal

from valuecanvas.core.agent import RunContext
from valuecanvas.core.llm import LlmUnavailableError, chat
from valuecanvas.target.finance import ScenarioResult


def _money(currency: str, value: Decimal) -> str:
    return f"{currency} {value:,.2f}"


def _percent(value: Decimal) -> str:
    return f"{(value * 100).normalize():f}%"


def template(
    currency: str, horizon_years: int, discount_rate: Decimal, scenarios: list[ScenarioResult]
) -> str:
    lines = []
    for scenario in scenarios:
        irr = f", an IRR of {_percent(scenario.irr)}" if scenario.irr is not None else ""
        lines.append(
            f"In the {scenario.name} scenario, an annual benefit of "
            f"{_money(currency, scenario.annual_benefit)} against a total cost of "
            f"{_money(currency, scenario.total_cost)} over {horizon_years} years gives a net "
            f"benefit of {_money(currency, scenario.net_benefit)}, an ROI of "
            f"{_percent(scenario.roi)}, an NPV of {_money(currency, scenario.npv)} at "
            f"{_percent(discount_rate)}{irr}, and payback in {scenario.payback_months} months."
        )
    return " ".join(lines)


async def write(
    context: RunContext, currency: str, horizon_years: int, discount_rate: Decimal,
    scenarios: list[ScenarioResult],
) -> str:  # fmt: skip
    facts = template(currency, horizon_years, discount_rate, scenarios)
    messages = [
        {"role": "system", "content":
            "You write the summary of a business case for a customer's executives: two to "
            "four sentences, plain and factual. Use only the numbers given, written as given; "
            "compute nothing new."},
        {"role": "user", "content": facts},
    ]  # fmt: skip
    try:
        answer = await chat(context, messages, max_tokens=400)
    except LlmUnavailableError:
        return facts  # the numbers in words still: the case does not wait for the proxy
    return facts if answer.offline or not answer.text.strip() else answer.text.strip()
