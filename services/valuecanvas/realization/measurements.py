"""Recording a KPI measurement of a value case (members record; viewers read)."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import APIRouter, Request, status

from valuecanvas.core.auth import UNAUTHORIZED, Caller, require_organization
from valuecanvas.core.db import caller_transaction
from valuecanvas.core.errors import ProblemError, error_doc
from valuecanvas.core.state import get_state
from valuecanvas.realization import repository
from valuecanvas.realization.schemas import Measurement, MeasurementIn

router = APIRouter(tags=["kpi-measurements"])


@router.post(
    "/v1/kpi-measurements",
    status_code=status.HTTP_201_CREATED,
    response_model=Measurement,
    responses={
        **UNAUTHORIZED,
        403: error_doc("viewers and other organizations cannot record"),
        404: error_doc("no such value case in your organization"),
    },
)
async def record_measurement(
    request: Request, caller: Caller, body: MeasurementIn
) -> dict[str, Any]:
    """A measurement for a day; another for the same KPI and day corrects it."""
    organization, _ = require_organization(caller)
    state = get_state(request)
    try:
        async with caller_transaction(state.pool, caller, metrics=state.metrics) as connection:
            if not await repository.case_exists(connection, body.value_case_id):
                raise ProblemError(
                    404, "unknown_value_case", "no such value case in your organization"
                )
            row = await repository.record(
                connection, organization, body.value_case_id, body.kpi,
                body.measured_on, body.value, body.source,
            )  # fmt: skip
    except asyncpg.InsufficientPrivilegeError:
        raise ProblemError(403, "forbidden", "your role cannot record measurements") from None
    return dict(row)
