"""Value cases: started from discovery notes (the value-case definition), read with their
result, and reviewed for realization later (the realization-review definition)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response, status

from valuecanvas.core.auth import UNAUTHORIZED, Caller
from valuecanvas.core.errors import ProblemError, error_doc
from valuecanvas.core.identity import Identity
from valuecanvas.orchestrator import repository
from valuecanvas.orchestrator.api.runs import MEMBERS, accepted, read_one, start_run
from valuecanvas.orchestrator.schemas import ReviewCreate, Started, ValueCase, ValueCaseCreate

router = APIRouter(tags=["value-cases"])
NOT_FOUND = error_doc("no such value case in your organization")


@router.post(
    "/v1/value-cases",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Started,
    responses={**UNAUTHORIZED, 403: MEMBERS},
)
async def create_value_case(
    request: Request, response: Response, caller: Caller, body: ValueCaseCreate
) -> dict[str, Any]:
    """Start a value case: opportunities from the discovery notes, the business case for
    three scenarios, then the check of its numbers, narrative and citations. Follow it at
    ``Location``."""
    run_input = body.model_dump(mode="json")
    started = await start_run(
        request, caller, "value-case", run_input,
        value_case={"name": body.name, "account_name": body.account.name},
    )  # fmt: skip
    return accepted(response, started)


async def _case(request: Request, caller: Identity, case_id: UUID) -> dict[str, Any]:
    return await read_one(request, caller, repository.value_case, case_id,
                          "unknown_value_case", "value case")  # fmt: skip


@router.get(
    "/v1/value-cases/{value_case_id}",
    response_model=ValueCase,
    responses={**UNAUTHORIZED, 404: NOT_FOUND},
)
async def get_value_case(request: Request, caller: Caller, value_case_id: UUID) -> dict[str, Any]:
    """The case, its status and verdict, and its result once its run succeeded."""
    return await _case(request, caller, value_case_id)


@router.post(
    "/v1/value-cases/{value_case_id}/reviews",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Started,
    responses={
        **UNAUTHORIZED,
        403: MEMBERS,
        404: NOT_FOUND,
        409: error_doc("the case has no business case yet (its run has not succeeded)"),
        422: error_doc("a field is invalid (period_end must be after period_start)"),
    },
)
async def review_value_case(
    request: Request, response: Response, caller: Caller, value_case_id: UUID, body: ReviewCreate
) -> dict[str, Any]:
    """Review what the case has realized (its recorded KPI measurements against its
    targets), rank what to expand into, and check its business case again."""
    if body.period_end <= body.period_start:
        raise ProblemError(422, "invalid_period", "period_end must be after period_start",
                           param="period_end")  # fmt: skip
    case = await _case(request, caller, value_case_id)
    result = case["result"]
    if not result or "business_case" not in result:
        raise ProblemError(409, "no_business_case", "the case has no business case yet")
    case_input = case["input"]
    benefits = result["case_inputs"]["benefits"]
    run_input = {
        "value_case_id": str(value_case_id),
        **body.model_dump(mode="json"),
        "kpis": [
            {
                key: benefit[key]
                for key in ("kpi", "baseline", "target", "direction", "value_per_unit")
            }
            for benefit in benefits
        ],
        "business_case": {
            "inputs": result["case_inputs"],
            "output": result["business_case"],
            "narrative": result.get("narrative") or "",
            "claims": result.get("claims", []),
            "sources": [case_input["discovery_notes"]],
        },
    }
    return accepted(response, await start_run(request, caller, "realization-review", run_input))
