"""The integrity agent's input (a business case to check) and its verdict."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from valuecanvas.core.numbers import Fraction
from valuecanvas.target.schemas import TargetInput, TargetOutput


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Claim(Input):
    text: str = Field(min_length=1, max_length=2000, pattern=r"^[^\x00]+$")
    source_quote: str | None = Field(default=None, max_length=2000, pattern=r"^[^\x00]*$")


class IntegrityInput(Input):
    inputs: TargetInput = Field(description="what the target agent was given")
    output: TargetOutput = Field(description="what it answered")
    narrative: str = Field(default="", max_length=20_000, pattern=r"^[^\x00]*$")
    claims: list[Claim] = Field(default_factory=list, max_length=100)
    sources: list[str] = Field(
        default_factory=list, max_length=20, description="the discovery notes quotes must come from"
    )
    tolerance: Fraction = Field(
        default=Decimal("0.005"), le=Decimal("0.1"), description="relative, for narrative numbers"
    )


class FindingOut(BaseModel):
    check: Literal["recompute", "narrative", "citations", "policies"]
    severity: Literal["fail", "warn"]
    message: str
    where: str | None


class IntegrityOutput(BaseModel):
    verdict: Literal["pass", "warn", "fail"]
    findings: list[FindingOut]
    checked: dict[str, int] = Field(description="how many items each check looked at")
