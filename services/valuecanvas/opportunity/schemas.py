"""This agent's input (an account profile and discovery notes) and its output: pains mapped
to value drivers, with the benefits a business case is built from and the claims that its
check looks up in the notes."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from valuecanvas.core.numbers import Amount, Count, Number

Text = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Account(Input):
    name: Text
    industry: Text | None = None
    annual_revenue: Amount = Field(description="a year, in the case's currency")
    employees: Count | None = None
    support_tickets_per_year: Count | None = None


class OpportunityInput(Input):
    account: Account
    discovery_notes: str = Field(min_length=1, max_length=50_000, pattern=r"^[^\x00]+$")


class Opportunity(BaseModel):
    driver: str
    name: str
    kpi: str
    unit: str
    direction: Literal["increase", "decrease"]
    baseline: Number
    baseline_source: Literal["notes", "catalogue"] = Field(
        description="notes: the number in the quote; catalogue: the driver's typical midpoint"
    )
    target: Number = Field(description="the baseline moved by the driver's typical improvement")
    value_per_unit: Number = Field(description="a year, from the account profile and formula")
    formula: str
    quote: str = Field(description="the sentence of the notes that names the pain, verbatim")


class BenefitOut(BaseModel):
    kpi: str
    baseline: Number
    target: Number
    direction: Literal["increase", "decrease"]
    value_per_unit: Number


class ClaimOut(BaseModel):
    text: str
    source_quote: str


class OpportunityOutput(BaseModel):
    opportunities: list[Opportunity]
    benefits: list[BenefitOut] = Field(description="what the business case is built from")
    claims: list[ClaimOut] = Field(description="one per opportunity, citing its quote")
    extractor: Literal["llm", "rules"] = Field(
        description="llm: the model found the pains; rules: the catalogue's cue phrases did "
        "(the offline provider)"
    )
    skipped: list[str] = Field(description="drivers the account profile cannot value, and why")


def quantize(value: Decimal, places: int = 2) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places))
