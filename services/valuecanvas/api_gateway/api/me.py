"""The caller's own profile and notification preferences."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request

from valuecanvas.api_gateway import repository
from valuecanvas.api_gateway.api.common import (
    INVALID,
    acting_in,
    audit,
    transaction,
    user_tokens_only,
)
from valuecanvas.api_gateway.caller import REFUSALS, Caller
from valuecanvas.api_gateway.schemas import (
    NotificationPreference,
    NotificationPreferenceSet,
    Profile,
    ProfileUpdate,
)
from valuecanvas.core.errors import ProblemError, error_doc

router = APIRouter(tags=["me"], responses=REFUSALS)


@router.get(
    "/v1/me", response_model=Profile,
    responses={404: error_doc("no profile yet: PUT /v1/me creates it")},
)  # fmt: skip
async def get_profile(request: Request, caller: Caller) -> dict[str, Any]:
    async with transaction(request, caller) as connection:
        row = await repository.own_profile(connection)
    if row is None:
        raise ProblemError(404, "no_profile", "no profile yet: PUT /v1/me creates it")
    return dict(row)


@router.put("/v1/me", response_model=Profile, responses=INVALID)
async def save_profile(request: Request, caller: Caller, body: ProfileUpdate) -> dict[str, Any]:
    """Creates the caller's profile (email from their token) on first call; sets the name.
    Audited in the organization the token names, when it names one."""
    user_tokens_only(caller, "a profile")
    email = caller.identity.claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise ProblemError(
            422, "email_claim_missing", "your token has no email claim", param="email"
        )
    assert caller.identity.user_id is not None
    async with transaction(request, caller) as connection:
        row = await repository.save_own_profile(
            connection, caller.identity.user_id, email, body.full_name
        )
        organization = caller.identity.organization_id
        if organization is not None and await repository.acting_role(connection) is not None:
            await audit(connection, caller, organization, "profile.update", "user",
                        caller.identity.user_id)  # fmt: skip
    return dict(row)


@router.get(
    "/v1/organizations/{organization_id}/notification-preferences",
    response_model=list[NotificationPreference],
)
async def list_preferences(
    request: Request, caller: Caller, organization_id: UUID
) -> list[dict[str, Any]]:
    """The caller's own preferences in this organization."""
    user_tokens_only(caller, "notification preferences")
    async with transaction(request, caller) as connection:
        await acting_in(connection, caller, organization_id)
        rows = await repository.list_preferences(connection)
    return [dict(row) for row in rows if row["organization_id"] == organization_id]


@router.put(
    "/v1/organizations/{organization_id}/notification-preferences",
    response_model=NotificationPreference,
    responses=INVALID,
)
async def set_preference(
    request: Request, caller: Caller, organization_id: UUID, body: NotificationPreferenceSet
) -> dict[str, Any]:
    user_tokens_only(caller, "notification preferences")
    async with transaction(request, caller) as connection:
        await acting_in(connection, caller, organization_id)
        row = await repository.set_preference(
            connection, organization_id, body.channel, body.event_type, body.enabled
        )
        await audit(connection, caller, organization_id, "notification_preference.set",
                    "notification_preference", f"{body.channel}:{body.event_type}",
                    enabled=body.enabled)  # fmt: skip
    return dict(row)
