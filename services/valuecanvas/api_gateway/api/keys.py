"""API keys: created (the key shown once), listed (prefix and metadata), revoked. For the
organization's owners and admins."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response, status

from valuecanvas.api_gateway import repository
from valuecanvas.api_gateway.api.common import (
    INVALID,
    NEWEST_FIRST,
    Cursor,
    Limit,
    acting_in,
    audit,
    list_page,
    transaction,
)
from valuecanvas.api_gateway.caller import REFUSALS, Caller
from valuecanvas.api_gateway.keys import generate_key
from valuecanvas.api_gateway.runtime import runtime_of
from valuecanvas.api_gateway.schemas import ApiKey, ApiKeyCreate, ApiKeyCreated, Page
from valuecanvas.core.errors import ProblemError, error_doc

router = APIRouter(
    prefix="/v1/organizations/{organization_id}/api-keys", tags=["api-keys"], responses=REFUSALS
)


@router.get("", response_model=Page[ApiKey], responses=INVALID)
async def list_api_keys(
    request: Request,
    caller: Caller,
    organization_id: UUID,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Newest first; the prefix and metadata only (the key itself is never stored)."""
    return await list_page(
        request, caller, organization_id, limit=limit, cursor=cursor, scope="admin",
        role="admin", key=NEWEST_FIRST, fetch=repository.list_api_keys,
    )  # fmt: skip


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated, responses=INVALID
)
async def create_api_key(
    request: Request, caller: Caller, organization_id: UUID, body: ApiKeyCreate, response: Response
) -> dict[str, Any]:
    """The key is in this answer only. It acts as the organization, through its own
    service identity, with the role its scopes allow (admin, member or viewer)."""
    caller.require_scope("admin")
    new = generate_key()
    async with transaction(request, caller) as connection:
        await acting_in(connection, caller, organization_id, role="admin")
        row = await repository.create_api_key(
            connection, organization_id, body.name, new.prefix, new.digest, body.scopes,
            body.expires_at, caller.identity.user_id,
        )  # fmt: skip
        await audit(connection, caller, organization_id, "api_key.create", "api_key", row["id"],
                    name=body.name, scopes=list(body.scopes), prefix=new.prefix)  # fmt: skip
    response.headers["Location"] = f"/v1/organizations/{organization_id}/api-keys/{row['id']}"
    return {**dict(row), "key": new.key}


@router.post(
    "/{key_id}/revoke", response_model=ApiKey,
    responses={404: error_doc("no such key in this organization")},
)  # fmt: skip
async def revoke_api_key(
    request: Request, caller: Caller, organization_id: UUID, key_id: UUID
) -> dict[str, Any]:
    """Revoked at once in the database; every gateway replica refuses it within
    GATEWAY_API_KEY_CACHE_SECONDS (this one at once). Revoking twice keeps the first time."""
    caller.require_scope("admin")
    async with transaction(request, caller) as connection:
        await acting_in(connection, caller, organization_id, role="admin")
        row = await repository.revoke_api_key(connection, organization_id, key_id)
        if row is None:
            raise ProblemError(404, "unknown_api_key", "no such key in this organization")
        await audit(connection, caller, organization_id, "api_key.revoke", "api_key", key_id)
    runtime_of(request).keys.forget(row["key_hash"])
    return {column: row[column] for column in ApiKey.model_fields}
