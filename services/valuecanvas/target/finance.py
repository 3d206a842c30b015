"""The business case's numbers, computed by code (the LLM never does arithmetic here).

For each scenario the improvement of every KPI (target against baseline, in the direction
that is better) is scaled by the scenario's factor and valued at the line's money per unit
and year; the costs are a one-time cost now and an annual cost. The yearly cash flows
(year 0: minus the one-time cost; years 1..N: benefit minus annual cost) give:

- ROI over the horizon: (total benefit - total cost) / total cost;
- NPV at the discount rate, and IRR: numpy-financial's ``npv`` (its first value is year 0,
  undiscounted) and ``irr``;
- payback in months: the one-time cost over the monthly net benefit.

Money is Decimal at the boundaries (inputs, outputs, rounded to cents); the discounting in
between is numpy's floating point. What cannot make a business case (no improvement, a
net benefit that never repays, an IRR with no sign change in the flows) raises
:class:`ImpossibleCaseError` naming the field, never NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Literal

import numpy_financial as npf

CENT = Decimal("0.01")
RATIO = Decimal("0.0001")


class ImpossibleCaseError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class BenefitLine:
    kpi: str
    baseline: Decimal
    target: Decimal
    direction: Literal["increase", "decrease"]
    value_per_unit: Decimal  # money per unit of improvement, per year

    def improvement(self) -> Decimal:
        return (
            self.target - self.baseline
            if self.direction == "increase"
            else self.baseline - self.target
        )


@dataclass(frozen=True)
class Costs:
    one_time: Decimal
    annual: Decimal


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    factor: Decimal
    annual_benefit: Decimal
    total_benefit: Decimal
    total_cost: Decimal
    net_benefit: Decimal
    roi: Decimal
    npv: Decimal
    irr: Decimal | None  # None when there is nothing to repay (no one-time cost)
    payback_months: Decimal
    cash_flows: tuple[Decimal, ...]


def money(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_EVEN)


def annual_benefit(lines: list[BenefitLine], factor: Decimal) -> Decimal:
    total = Decimal(0)
    for index, line in enumerate(lines):
        improvement = line.improvement()
        if improvement <= 0:
            raise ImpossibleCaseError(
                f"benefits.{index}.target",
                f"{line.kpi}: the target is not an improvement on the baseline "
                f"({line.baseline} -> {line.target}, {line.direction})",
            )
        if line.value_per_unit <= 0:
            raise ImpossibleCaseError(
                f"benefits.{index}.value_per_unit",
                f"{line.kpi}: the value per unit must be positive",
            )
        total += improvement * factor * line.value_per_unit
    return total


def scenario(
    name: str,
    factor: Decimal,
    lines: list[BenefitLine],
    costs: Costs,
    *,
    horizon_years: int,
    discount_rate: Decimal,
) -> ScenarioResult:
    # Enough digits for any product of bounded inputs (the default 28 is not, for a
    # forged output's factor given back to the integrity agent).
    with localcontext(prec=80):
        return _scenario(
            name, factor, lines, costs, horizon_years=horizon_years, discount_rate=discount_rate
        )


def _scenario(
    name: str,
    factor: Decimal,
    lines: list[BenefitLine],
    costs: Costs,
    *,
    horizon_years: int,
    discount_rate: Decimal,
) -> ScenarioResult:
    if not lines:
        raise ImpossibleCaseError("benefits", "a business case needs at least one benefit")
    if costs.one_time < 0 or costs.annual < 0:
        field = "costs.one_time" if costs.one_time < 0 else "costs.annual"
        raise ImpossibleCaseError(field, "costs cannot be negative")
    if costs.one_time == 0 and costs.annual == 0:
        raise ImpossibleCaseError("costs", "a business case needs a cost (ROI is undefined)")
    benefit = annual_benefit(lines, factor)
    yearly_net = benefit - costs.annual
    if yearly_net <= 0:
        raise ImpossibleCaseError(
            "costs.annual",
            f"{name}: the annual cost ({money(costs.annual)}) is not below the annual benefit "
            f"({money(benefit)}): the case never pays back",
        )
    flows = [-costs.one_time] + [yearly_net] * horizon_years
    total_benefit = benefit * horizon_years
    total_cost = costs.one_time + costs.annual * horizon_years
    npv: float = float(npf.npv(float(discount_rate), [float(flow) for flow in flows]))
    irr: Decimal | None = None
    if costs.one_time > 0:
        found: float = float(npf.irr([float(flow) for flow in flows]))
        if not math.isfinite(found):
            raise ImpossibleCaseError(
                "costs", f"{name}: the cash flows have no internal rate of return"
            )
        irr = Decimal(str(found)).quantize(RATIO, rounding=ROUND_HALF_EVEN)
    payback = costs.one_time / (yearly_net / 12)
    return ScenarioResult(
        name=name,
        factor=factor,
        annual_benefit=money(benefit),
        total_benefit=money(total_benefit),
        total_cost=money(total_cost),
        net_benefit=money(total_benefit - total_cost),
        roi=((total_benefit - total_cost) / total_cost).quantize(RATIO, rounding=ROUND_HALF_EVEN),
        npv=money(npv),
        irr=irr,
        payback_months=payback.quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN),
        cash_flows=tuple(money(flow) for flow in flows),
    )
