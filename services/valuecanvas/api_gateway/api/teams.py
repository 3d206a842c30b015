"""Teams and their members: members read; owners and admins manage."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response, status

from valuecanvas.api_gateway import repository
from valuecanvas.api_gateway.api.common import (
    INVALID,
    Cursor,
    Limit,
    Responses,
    acting_in,
    audit,
    decode_cursor,
    list_page,
    page,
    transaction,
)
from valuecanvas.api_gateway.caller import REFUSALS, Caller
from valuecanvas.api_gateway.schemas import Page, Team, TeamCreate, TeamMember, TeamMemberAdd
from valuecanvas.core.errors import ProblemError, error_doc

router = APIRouter(
    prefix="/v1/organizations/{organization_id}/teams", tags=["teams"], responses=REFUSALS
)
_NOT_FOUND: Responses = {404: error_doc("no such team (or member) in this organization")}
_CONFLICT: Responses = {409: error_doc("it exists already")}


@router.get("", response_model=Page[Team], responses=INVALID)
async def list_teams(
    request: Request,
    caller: Caller,
    organization_id: UUID,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    return await list_page(
        request, caller, organization_id, limit=limit, cursor=cursor,
        key={"name": str, "id": UUID}, fetch=repository.list_teams,
    )  # fmt: skip


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=Team,
    responses={**INVALID, **_CONFLICT},
)  # fmt: skip
async def create_team(
    request: Request, caller: Caller, organization_id: UUID, body: TeamCreate
) -> dict[str, Any]:
    caller.require_scope("admin")
    async with transaction(request, caller) as connection:
        await acting_in(connection, caller, organization_id, role="admin")
        row = await repository.create_team(connection, organization_id, body.name, body.description)
        await audit(connection, caller, organization_id, "team.create", "team", row["id"],
                    name=body.name)  # fmt: skip
    return dict(row)


@router.delete("/{team_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
async def delete_team(
    request: Request, caller: Caller, organization_id: UUID, team_id: UUID
) -> Response:
    caller.require_scope("admin")
    async with transaction(request, caller) as connection:
        await acting_in(connection, caller, organization_id, role="admin")
        if not await repository.delete_team(connection, organization_id, team_id):
            raise ProblemError(404, "unknown_team", "no such team in this organization")
        await audit(connection, caller, organization_id, "team.delete", "team", team_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{team_id}/members", response_model=Page[TeamMember], responses={**INVALID, **_NOT_FOUND}
)
async def list_team_members(
    request: Request,
    caller: Caller,
    organization_id: UUID,
    team_id: UUID,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    caller.require_scope("value-cases:read")
    after = decode_cursor(cursor, UUID)
    async with transaction(request, caller) as connection:
        await acting_in(connection, caller, organization_id)
        if not await repository.team_exists(connection, organization_id, team_id):
            raise ProblemError(404, "unknown_team", "no such team in this organization")
        rows = await repository.list_team_members(
            connection, organization_id, team_id, limit + 1, after[0] if after else None
        )
    return page(rows, limit, "user_id")


@router.post(
    "/{team_id}/members", status_code=status.HTTP_201_CREATED, response_model=TeamMember,
    responses={**INVALID, **_NOT_FOUND, **_CONFLICT},
)  # fmt: skip
async def add_team_member(
    request: Request, caller: Caller, organization_id: UUID, team_id: UUID, body: TeamMemberAdd
) -> dict[str, Any]:
    """Only the organization's active members can join its teams (the database's rule)."""
    caller.require_scope("admin")
    async with transaction(request, caller) as connection:
        await acting_in(connection, caller, organization_id, role="admin")
        if not await repository.team_exists(connection, organization_id, team_id):
            raise ProblemError(404, "unknown_team", "no such team in this organization")
        row = await repository.add_team_member(
            connection, organization_id, team_id, body.user_id, body.role
        )
        await audit(connection, caller, organization_id, "team.member_add", "team", team_id,
                    user_id=str(body.user_id), role=body.role)  # fmt: skip
    return dict(row)


@router.delete(
    "/{team_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND
)
async def remove_team_member(
    request: Request, caller: Caller, organization_id: UUID, team_id: UUID, user_id: UUID
) -> Response:
    caller.require_scope("admin")
    async with transaction(request, caller) as connection:
        await acting_in(connection, caller, organization_id, role="admin")
        if not await repository.remove_team_member(connection, organization_id, team_id, user_id):
            raise ProblemError(404, "unknown_member", "no such member of this team")
        await audit(connection, caller, organization_id, "team.member_remove", "team", team_id,
                    user_id=str(user_id))  # fmt: skip
    return Response(status_code=status.HTTP_204_NO_CONTENT)
