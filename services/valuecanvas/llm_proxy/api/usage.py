"""GET /v1/usage: requests, tokens, cost and errors per user, organization, model and day,
from the ledger (row-level security decides which rows the caller reads)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BeforeValidator

from valuecanvas.core.auth import UNAUTHORIZED, Caller
from valuecanvas.core.db import caller_transaction
from valuecanvas.core.errors import error_doc, error_response
from valuecanvas.core.state import get_state
from valuecanvas.llm_proxy import repository
from valuecanvas.llm_proxy.schemas import UsageReport, money

router = APIRouter(tags=["llm"])


def _iso_day(value: Any) -> Any:
    """Only YYYY-MM-DD: pydantic alone would read ``0`` as a Unix time (1970-01-01)."""
    if isinstance(value, str) and not _ISO_DAY.fullmatch(value):
        raise ValueError("must be a date as YYYY-MM-DD")
    return value


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
Day = Annotated[date, BeforeValidator(_iso_day)]


@router.get(
    "/v1/usage",
    summary="Requests, tokens, cost and errors per user, organization, model and day",
    description="'end' must not be before 'start' (400 otherwise).",
    response_model=UsageReport,
    responses={
        400: error_doc("'end' is before 'start'"),
        **UNAUTHORIZED,
        403: error_doc("scope=organization is for the organization's owners and admins"),
    },
)
async def usage(
    request: Request,
    caller: Caller,
    scope: Literal["me", "organization"] = "me",
    start: Annotated[
        Day | None, Query(description="first day, YYYY-MM-DD, inclusive (default: 30 days ago)")
    ] = None,
    end: Annotated[
        Day | None, Query(description="last day, YYYY-MM-DD, inclusive (default: today)")
    ] = None,
) -> Response:
    state = get_state(request)
    today = datetime.now(UTC).date()
    start = start or today - timedelta(days=30)
    end = end or today
    if end < start:
        return error_response(
            400, "invalid_request_error", "invalid_range", "'end' is before 'start'", param="end"
        )
    async with caller_transaction(state.pool, caller, metrics=state.metrics) as connection:
        if scope == "organization":
            if await repository.member_role(connection, caller) not in ("owner", "admin"):
                return error_response(403, "permission_error", "not_an_admin",
                                      "organization usage is for the organization's admins")  # fmt: skip
            rows = await repository.usage_by_day(
                connection, start, end, organization=caller.organization_id
            )
        else:
            rows = await repository.usage_by_day(connection, start, end, user=caller.user_id)
    items = [
        {
            "day": row["day"].isoformat(),
            "user_id": str(row["user_id"]) if row["user_id"] else None,
            "organization_id": str(row["organization_id"]) if row["organization_id"] else None,
            "model": row["logical_model"],
            "requests": row["requests"],
            "prompt_tokens": int(row["prompt_tokens"]),
            "completion_tokens": int(row["completion_tokens"]),
            "cost_usd": money(row["cost_usd"]),
            "errors": row["errors"],
        }
        for row in rows
    ]
    totals = {
        "requests": sum(item["requests"] for item in items),
        "prompt_tokens": sum(item["prompt_tokens"] for item in items),
        "completion_tokens": sum(item["completion_tokens"] for item in items),
        "cost_usd": money(sum((row["cost_usd"] for row in rows), Decimal(0))),
        "errors": sum(item["errors"] for item in items),
    }
    return JSONResponse({"scope": scope, "start": start.isoformat(), "end": end.isoformat(),
                         "data": items, "totals": totals})  # fmt: skip
