"""The organization's audit log, newest first, for its owners and admins."""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request

from valuecanvas.api_gateway import repository
from valuecanvas.api_gateway.api.common import (
    INVALID,
    Cursor,
    Limit,
    list_page,
)
from valuecanvas.api_gateway.caller import REFUSALS, Caller
from valuecanvas.api_gateway.schemas import AuditEntry, Page

router = APIRouter(tags=["audit"], responses=REFUSALS)


@router.get(
    "/v1/organizations/{organization_id}/audit-log",
    response_model=Page[AuditEntry],
    responses=INVALID,
)
async def list_audit(
    request: Request,
    caller: Caller,
    organization_id: UUID,
    limit: Limit = 50,
    cursor: Cursor = None,
    action: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_.:-]{1,99}$")] = None,
) -> dict[str, Any]:
    result = await list_page(
        request, caller, organization_id, limit=limit, cursor=cursor, scope="admin",
        role="admin", key={"id": int},
        fetch=lambda connection, organization, count, before: repository.list_audit(
            connection, organization, count, before[0] if before else None, action
        ),
    )  # fmt: skip
    for entry in result["data"]:
        if isinstance(entry["details"], str):
            entry["details"] = json.loads(entry["details"])
    return result
