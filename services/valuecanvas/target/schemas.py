"""The target agent's input and output: money and ratios as decimals (strings in JSON),
every field bounded."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Amount = Annotated[
    Decimal, Field(ge=0, le=Decimal("1e12"), max_digits=20, decimal_places=6, allow_inf_nan=False)
]
Measure = Annotated[
    Decimal,
    Field(
        ge=Decimal("-1e12"),
        le=Decimal("1e12"),
        max_digits=20,
        decimal_places=6,
        allow_inf_nan=False,
    ),
]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Benefit(Input):
    kpi: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")
    baseline: Measure
    target: Measure
    direction: Literal["increase", "decrease"] = Field(description="which way is better")
    value_per_unit: Amount = Field(description="money per unit of improvement, per year")


class Costs(Input):
    one_time: Amount = Field(description="spent now (year 0)")
    annual: Amount = Field(description="spent every year of the horizon")


class TargetInput(Input):
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    benefits: list[Benefit] = Field(min_length=1, max_length=50)
    costs: Costs
    horizon_years: int = Field(default=3, ge=1, le=10)
    discount_rate: Decimal | None = Field(
        default=None, ge=0, lt=1, max_digits=6, decimal_places=4, allow_inf_nan=False,
        description="default: the service's TARGET_DISCOUNT_RATE",
    )  # fmt: skip


class Scenario(BaseModel):
    name: str
    factor: Decimal = Field(description="the share of each KPI's improvement this scenario counts")
    annual_benefit: Decimal
    total_benefit: Decimal
    total_cost: Decimal
    net_benefit: Decimal
    roi: Decimal = Field(description="(total benefit - total cost) / total cost, over the horizon")
    npv: Decimal
    irr: Decimal | None = Field(description="none when nothing is invested up front")
    payback_months: Decimal
    cash_flows: list[Decimal] = Field(description="year 0 (the one-time cost), then each year")


class TargetOutput(BaseModel):
    currency: str
    horizon_years: int
    discount_rate: Decimal
    scenarios: list[Scenario]
