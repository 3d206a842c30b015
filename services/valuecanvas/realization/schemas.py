"""The realization agent's input and output, and a recorded KPI measurement."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from valuecanvas.core.numbers import Amount, Fraction, Measure

KpiName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
Day = date


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KpiGoal(Input):
    kpi: KpiName
    baseline: Measure
    target: Measure
    direction: Literal["increase", "decrease"] = Field(description="which way is better")
    value_per_unit: Amount | None = Field(
        default=None, description="money per unit of improvement, per year (passed on)"
    )


class RealizationInput(Input):
    value_case_id: UUID
    period_start: Day
    period_end: Day
    as_of: Day | None = Field(default=None, description="default: today (UTC)")
    kpis: list[KpiGoal] = Field(min_length=1, max_length=20)
    tolerance: Fraction = Field(
        default=Decimal("0.10"), le=Decimal("0.5"), description="how far behind counts as at risk"
    )

    @model_validator(mode="after")
    def _period(self) -> RealizationInput:
        if self.period_end <= self.period_start:
            raise ValueError("period_end must be after period_start")
        return self


class KpiProgress(BaseModel):
    kpi: str
    status: Literal["achieved", "on_track", "at_risk"]
    measurements: int
    latest_value: Decimal | None
    latest_on: date | None
    realized_share: Decimal | None = Field(description="of the target's improvement, so far")
    expected_share: Decimal = Field(description="the share of the period elapsed")
    trend_per_30_days: Decimal | None
    forecast_value: Decimal | None = Field(description="the trend line at period_end")
    forecast_share: Decimal | None
    flags: list[str]
    remaining_gap: Decimal = Field(description="KPI units still missing of the improvement")
    value_per_unit: Decimal | None = Field(description="as given with the goal")


class RealizationOutput(BaseModel):
    value_case_id: UUID
    as_of: date
    status: Literal["achieved", "on_track", "at_risk"]
    at_risk: list[str] = Field(description="the KPIs at risk")
    kpis: list[KpiProgress]


class MeasurementIn(Input):
    value_case_id: UUID
    kpi: KpiName
    measured_on: Day
    value: Measure
    source: str | None = Field(default=None, max_length=500, pattern=r"^[^\x00]*$")


class Measurement(BaseModel):
    id: UUID
    value_case_id: UUID
    kpi: str
    measured_on: date
    value: Decimal
    source: str | None
