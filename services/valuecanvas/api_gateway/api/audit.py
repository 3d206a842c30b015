"""The organization's audit log, newest first, for its owners and admins."""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request

from valuecanvas.api_gateway import repository
from valuecanvas.api_gateway.api.common import (
    Cursor,
    Limit,
    acting_in,
    decode_cursor,
    page,
    transaction,
)
from valuecanvas.api_gateway.caller import REFUSALS, Caller
from valuecanvas.api_gateway.schemas import AuditEntry, Page
from valuecanvas.core.errors import error_doc

router = APIRouter(tags=["audit"], responses=REFUSALS)


@router.get(
    "/v1/organizations/{organization_id}/audit-log",
    response_model=Page[AuditEntry],
    responses={422: error_doc("a field is invalid (named in param)")},
)
async def list_audit(
    request: Request,
    caller: Caller,
    organization_id: UUID,
    limit: Limit = 50,
    cursor: Cursor = None,
    action: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_.:-]{1,99}$")] = None,
) -> dict[str, Any]:
    caller.require_scope("admin")
    before = decode_cursor(cursor, int)
    async with transaction(request, caller) as connection:
        await acting_in(connection, caller, organization_id, role="admin")
        rows = await repository.list_audit(
            connection, organization_id, limit + 1, before[0] if before else None, action
        )
    result = page(rows, limit, "id")
    for entry in result["data"]:
        if isinstance(entry["details"], str):
            entry["details"] = json.loads(entry["details"])
    return result
