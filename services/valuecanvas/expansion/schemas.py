"""This agent's input (a review of the value realized, and the KPIs' worth) and its ranking."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from valuecanvas.core.numbers import Amount, Number, Whole

Sku = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KpiWorth(Input):
    kpi: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")
    status: Literal["achieved", "on_track", "at_risk"] = Field(
        description="from the review of the value realized"
    )
    remaining_gap: Amount = Field(description="KPI units still missing of the improvement aimed at")
    value_per_unit: Amount = Field(description="money per unit of improvement, per year")


class ExpansionInput(Input):
    @field_validator("owned")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a product is listed twice")
        return value

    owned: list[Sku] = Field(
        default_factory=list, max_length=50, json_schema_extra={"uniqueItems": True}
    )
    kpis: list[KpiWorth] = Field(min_length=1, max_length=20)
    limit: Whole = Field(default=5, ge=1, le=20)


class CandidateOut(BaseModel):
    sku: str
    name: str
    kind: Literal["upsell", "cross_sell"]
    expected_value: Number = Field(description="a year: the value it adds minus its price")
    gross_value: Number
    annual_price: Number
    kpis: list[str]
    rationale: str


class ExpansionOutput(BaseModel):
    candidates: list[CandidateOut]
    considered: int = Field(description="products the customer could add")
