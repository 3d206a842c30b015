"""The target agent's input and output: money and ratios as decimals (strings in JSON),
every field bounded."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from valuecanvas.core.numbers import Amount, Fraction, Measure, Number, Whole


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


ScenarioName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")]


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
    horizon_years: Whole = Field(default=3, ge=1, le=10)
    discount_rate: Fraction | None = Field(
        default=None, lt=1, description="default: the service's TARGET_DISCOUNT_RATE"
    )  # fmt: skip
    scenarios: list[ScenarioName] | None = Field(
        default=None, min_length=1, max_length=10, json_schema_extra={"uniqueItems": True},
        description="which of the configured scenarios (TARGET_SCENARIOS); default: all",
    )  # fmt: skip

    @field_validator("scenarios")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("a scenario is listed twice")
        return value


class Scenario(BaseModel):
    name: str
    factor: Number = Field(description="the share of each KPI's improvement this scenario counts")
    annual_benefit: Number
    total_benefit: Number
    total_cost: Number
    net_benefit: Number
    roi: Number = Field(description="(total benefit - total cost) / total cost, over the horizon")
    npv: Number
    irr: Number | None = Field(description="none when nothing is invested up front")
    payback_months: Number
    cash_flows: list[Number] = Field(
        max_length=11, description="year 0 (the one-time cost), then each year"
    )


class TargetOutput(BaseModel):
    """Bounded as the input is: the integrity agent takes one back from a client and computes
    it again (an unbounded horizon would make IRR's polynomial as large as the horizon)."""

    currency: str
    horizon_years: Whole = Field(ge=1, le=10)
    discount_rate: Number
    scenarios: list[Scenario] = Field(max_length=10)
    narrative: str = Field(
        default="", description="the case in words; every number in it is one of the case's"
    )
