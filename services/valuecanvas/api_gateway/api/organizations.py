"""Organizations and their members: create, list, rename; invite, accept, change a role,
remove, leave. Only owners and admins change membership (and only owners touch owners:
the database's rule, reported as 403)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status

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
    user_tokens_only,
)
from valuecanvas.api_gateway.caller import REFUSALS, Caller
from valuecanvas.api_gateway.schemas import (
    Member,
    MemberInvite,
    Organization,
    OrganizationCreate,
    OrganizationRename,
    Page,
    RoleChange,
)
from valuecanvas.core.errors import ProblemError, error_doc
from valuecanvas.core.requestid import current_request_id

router = APIRouter(prefix="/v1/organizations", tags=["organizations"], responses=REFUSALS)
_NOT_FOUND: Responses = {404: error_doc("no such member in this organization")}
_CONFLICT: Responses = {
    409: error_doc("it exists already, or the organization would lose its last owner")
}


@router.get("", response_model=Page[Organization], responses=INVALID)
async def list_organizations(
    request: Request, caller: Caller, limit: Limit = 50, cursor: Cursor = None
) -> dict[str, Any]:
    """The organizations the caller is an active or invited member of."""
    after = decode_cursor(cursor, datetime, UUID)
    async with transaction(request, caller) as connection:
        rows = await repository.list_organizations(connection, limit + 1, after)
    return page(rows, limit, "created_at", "id")


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=Organization,
    responses={**_CONFLICT, **INVALID},
)  # fmt: skip
async def create_organization(
    request: Request, caller: Caller, body: OrganizationCreate, response: Response
) -> dict[str, Any]:
    """A new organization, with the caller as its owner."""
    user_tokens_only(caller, "creating an organization")
    email = caller.identity.claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise ProblemError(
            422, "email_claim_missing", "your token has no email claim", param="email"
        )
    async with transaction(request, caller) as connection:
        # Audited inside (as service_role: the caller's token cannot name it yet).
        row = await repository.create_organization(
            connection, caller.identity, body.name, body.slug, email, current_request_id()
        )
    response.headers["Location"] = f"/v1/organizations/{row['id']}"
    return {**dict(row), "my_role": "owner"}


@router.get("/{organization_id}", response_model=Organization)
async def get_organization(
    request: Request, caller: Caller, organization_id: UUID
) -> dict[str, Any]:
    caller.require_scope("value-cases:read")
    async with transaction(request, caller) as connection:
        acting = await acting_in(connection, caller, organization_id)
        rows = await repository.list_organizations(connection, 100, None)
    row = next(row for row in rows if row["id"] == organization_id)
    return {**dict(row), "my_role": acting.role}


@router.patch("/{organization_id}", response_model=Organization, responses=INVALID)
async def rename_organization(
    request: Request, caller: Caller, organization_id: UUID, body: OrganizationRename
) -> dict[str, Any]:
    caller.require_scope("admin")
    async with transaction(request, caller) as connection:
        acting = await acting_in(connection, caller, organization_id, role="admin")
        row = await repository.rename_organization(connection, organization_id, body.name)
        assert row is not None  # an acting admin sees their organization
        await audit(connection, caller, organization_id, "organization.rename", "organization",
                    organization_id, name=body.name)  # fmt: skip
    return {**dict(row), "my_role": acting.role}


@router.get("/{organization_id}/members", response_model=Page[Member], responses=INVALID)
async def list_members(
    request: Request,
    caller: Caller,
    organization_id: UUID,
    limit: Limit = 50,
    cursor: Cursor = None,
    member_status: Annotated[
        str | None, Query(alias="status", pattern="^(invited|active)$")
    ] = None,
) -> dict[str, Any]:
    return await list_page(
        request, caller, organization_id, limit=limit, cursor=cursor,
        key={"created_at": datetime, "user_id": UUID},
        fetch=lambda connection, organization, count, after: repository.list_members(
            connection, organization, count, after, member_status
        ),
    )  # fmt: skip


@router.post(
    "/{organization_id}/members", status_code=status.HTTP_201_CREATED, response_model=Member,
    responses={**_CONFLICT, **INVALID, 404: error_doc("no user with this email has signed in")},
)  # fmt: skip
async def invite_member(
    request: Request, caller: Caller, organization_id: UUID, body: MemberInvite
) -> dict[str, Any]:
    """An invitation: it grants nothing until the invited user accepts it."""
    caller.require_scope("admin")
    async with transaction(request, caller) as connection:
        await acting_in(connection, caller, organization_id, role="admin")
        user = await repository.user_by_email(connection, body.email)
        if user is None:
            raise ProblemError(
                404, "unknown_user",
                "no user with this email has signed in yet; they sign in once, then you invite them",
                param="email",
            )  # fmt: skip
        await repository.invite_member(connection, organization_id, user, body.role)
        await audit(connection, caller, organization_id, "member.invite", "user", user,
                    role=body.role)  # fmt: skip
        row = await repository.member(connection, organization_id, user)
    assert row is not None
    return dict(row)


@router.post(
    "/{organization_id}/invitation/accept", response_model=Member,
    responses={404: error_doc("you have no invitation to this organization")},
)  # fmt: skip
async def accept_invitation(
    request: Request, caller: Caller, organization_id: UUID
) -> dict[str, Any]:
    """The invited user accepts (their token must name this organization)."""
    user_tokens_only(caller, "accepting an invitation")
    if caller.identity.organization_id != organization_id:
        raise ProblemError(
            403, "wrong_organization", "use a token that names this organization",
            param="organization_id",
        )  # fmt: skip
    user = caller.identity.user_id
    assert user is not None  # a user token always names its user
    async with transaction(request, caller) as connection:
        if not await repository.accept_invitation(connection, organization_id):
            raise ProblemError(404, "no_invitation", "you have no open invitation here")
        await audit(connection, caller, organization_id, "member.accept", "user", user)
        row = await repository.member(connection, organization_id, user)
    assert row is not None
    return dict(row)


@router.patch(
    "/{organization_id}/members/{user_id}", response_model=Member,
    responses={**_NOT_FOUND, **_CONFLICT, **INVALID},
)  # fmt: skip
async def change_role(
    request: Request, caller: Caller, organization_id: UUID, user_id: UUID, body: RoleChange
) -> dict[str, Any]:
    caller.require_scope("admin")
    async with transaction(request, caller) as connection:
        await acting_in(connection, caller, organization_id, role="admin")
        if not await repository.change_role(connection, organization_id, user_id, body.role):
            raise ProblemError(404, "unknown_member", "no such member you may change")
        await audit(connection, caller, organization_id, "member.role_change", "user", user_id,
                    role=body.role)  # fmt: skip
        row = await repository.member(connection, organization_id, user_id)
    assert row is not None
    return dict(row)


@router.delete(
    "/{organization_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT,
    responses={**_NOT_FOUND, **_CONFLICT},
)  # fmt: skip
async def remove_member(
    request: Request, caller: Caller, organization_id: UUID, user_id: UUID
) -> Response:
    """An admin removes a member, or a member leaves (their own id)."""
    leaving = user_id == caller.identity.user_id
    if not leaving:
        caller.require_scope("admin")
    async with transaction(request, caller) as connection:
        await acting_in(connection, caller, organization_id, role="viewer" if leaving else "admin")
        # Written first: after leaving, the caller may no longer append to the log.
        await audit(connection, caller, organization_id,
                    "member.leave" if leaving else "member.remove", "user", user_id)  # fmt: skip
        if not await repository.remove_member(connection, organization_id, user_id):
            raise ProblemError(404, "unknown_member", "no such member you may remove")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
