"""The orchestrator's public API models: starting value cases, reviews and runs, and what a
run and a value case look like."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from valuecanvas.core.numbers import Whole
from valuecanvas.expansion.schemas import Sku
from valuecanvas.opportunity.schemas import Account
from valuecanvas.orchestrator.definitions import DefinitionSpec
from valuecanvas.orchestrator.mapping import reject_nul
from valuecanvas.target.schemas import Costs

Text = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
DefinitionName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,62}$")]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ValueCaseCreate(Input):
    name: Text
    account: Account
    discovery_notes: str = Field(min_length=1, max_length=50_000, pattern=r"^[^\x00]+$")
    costs: Costs = Field(description="what the customer would spend: now, and every year")
    horizon_years: Whole = Field(default=3, ge=1, le=10)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")


class ReviewCreate(Input):
    period_start: date
    period_end: date
    as_of: date | None = Field(default=None, description="default: today (UTC)")
    owned: list[Sku] = Field(
        default_factory=list, max_length=50, json_schema_extra={"uniqueItems": True}
    )


class WorkflowCreate(Input):
    definition: DefinitionName = Field(description="a built-in or your organization's own")
    input: dict[str, Any] = Field(
        default_factory=dict, description="JSON; no NUL characters (Postgres cannot store them)"
    )

    @field_validator("input")
    @classmethod
    def _storable(cls, value: dict[str, Any]) -> dict[str, Any]:
        reject_nul(value, "input")
        return value


class DefinitionCreate(Input):
    name: DefinitionName
    definition: DefinitionSpec


class Definition(BaseModel):
    id: UUID
    name: str
    version: int
    status: str
    definition: dict[str, Any]
    created_at: datetime


class Started(BaseModel):
    workflow_id: UUID
    value_case_id: UUID | None = None
    status: Literal["pending", "running", "succeeded", "failed", "cancelled"]


class StepProgress(BaseModel):
    id: str
    agent: str
    status: Literal["pending", "running", "succeeded", "failed", "cancelled"] = Field(
        description="cancelled: it was under way when the run was cancelled"
    )
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    replayed: bool | None = None
    error: str | None = None


class Workflow(BaseModel):
    id: UUID
    definition: str
    definition_version: int
    status: Literal["pending", "running", "succeeded", "failed", "cancelled"]
    steps: list[StepProgress] = Field(description="in the definition's order")
    failed_step: str | None
    error: str | None
    value_case_id: UUID | None
    output: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ValueCase(BaseModel):
    id: UUID
    name: str
    account_name: str | None
    status: Literal["draft", "running", "completed", "failed", "approved"] = Field(
        description="approved only when the integrity check passed"
    )
    verdict: Literal["pass", "warn", "fail"] | None
    workflow_id: UUID | None
    input: dict[str, Any]
    result: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
