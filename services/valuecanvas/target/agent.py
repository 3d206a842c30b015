"""The target agent: a business case (benefit, cost, ROI, NPV, IRR, payback) for each
scenario asked for, computed by ``finance`` from the KPI baselines and targets it is given,
and the case in words (``narrative``)."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal

from valuecanvas.core.agent import Agent, AgentRunError, RunContext
from valuecanvas.core.state import get_state
from valuecanvas.target import finance, narrative
from valuecanvas.target.schemas import TargetInput, TargetOutput
from valuecanvas.target.settings import TargetSettings

# The output's numbers are bounded (core.numbers.Number): a case beyond it is refused, named.
OUTPUT_BOUND = Decimal("1e15")


async def build_case(context: RunContext, body: TargetInput) -> TargetOutput:
    settings = get_state(context.request).settings
    assert isinstance(settings, TargetSettings)
    rate = body.discount_rate if body.discount_rate is not None else settings.target_discount_rate
    lines = [
        finance.BenefitLine(b.kpi, b.baseline, b.target, b.direction, b.value_per_unit)
        for b in body.benefits
    ]
    costs = finance.Costs(body.costs.one_time, body.costs.annual)
    configured = settings.target_scenarios
    unknown = sorted(set(body.scenarios or ()) - set(configured))
    if unknown:
        raise AgentRunError(
            "scenarios", f"unknown scenario {unknown[0]!r} (known: {', '.join(configured)})"
        )
    wanted = {name: configured[name] for name in (body.scenarios or configured)}
    try:
        scenarios = [
            finance.scenario(
                name,
                Decimal(str(factor)),
                lines,
                costs,
                horizon_years=body.horizon_years,
                discount_rate=rate,
            )
            for name, factor in wanted.items()
        ]
    except finance.ImpossibleCaseError as exc:
        raise AgentRunError(exc.field, exc.message) from None
    largest = max(abs(value) for scenario in scenarios for value in
                  (scenario.total_benefit, scenario.total_cost, scenario.npv, *scenario.cash_flows))  # fmt: skip
    if largest > OUTPUT_BOUND:
        raise AgentRunError(
            "benefits", f"the case's amounts reach {largest:.3e}, beyond 10^15: check the values "
            "per unit and the targets (their units)",
        )  # fmt: skip
    return TargetOutput.model_validate(
        {
            "currency": body.currency,
            "horizon_years": body.horizon_years,
            "discount_rate": rate,
            "scenarios": [asdict(scenario) for scenario in scenarios],
            "narrative": await narrative.write(
                context, body.currency, body.horizon_years, rate, scenarios
            ),
        }
    )


TARGET = Agent(
    name="target",
    input_model=TargetInput,
    output_model=TargetOutput,
    run=build_case,
    summary="A business case for each scenario: benefit, cost, ROI, NPV, IRR, payback",
)
