"""Webhooks: registered (the signing secret shown once), listed, deleted. For the
organization's owners and admins.

The secret is derived from INTERNAL_TOKEN_SECRET and the webhook's id (core/webhooks.py),
so whoever delivers (the orchestrator) derives it again and nothing stores it; the table
keeps its sha256 only."""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID, uuid4

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
from valuecanvas.api_gateway.schemas import Page, Webhook, WebhookCreate, WebhookCreated
from valuecanvas.core.errors import ProblemError, error_doc
from valuecanvas.core.state import get_state
from valuecanvas.core.webhooks import signing_secret

router = APIRouter(
    prefix="/v1/organizations/{organization_id}/webhooks", tags=["webhooks"], responses=REFUSALS
)


@router.get("", response_model=Page[Webhook], responses=INVALID)
async def list_webhooks(
    request: Request,
    caller: Caller,
    organization_id: UUID,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    return await list_page(
        request, caller, organization_id, limit=limit, cursor=cursor, scope="admin",
        role="admin", key=NEWEST_FIRST, fetch=repository.list_webhooks,
    )  # fmt: skip


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated, responses=INVALID
)
async def create_webhook(
    request: Request, caller: Caller, organization_id: UUID, body: WebhookCreate
) -> dict[str, Any]:
    caller.require_scope("admin")
    webhook = uuid4()
    settings = get_state(request).settings
    secret = signing_secret(settings.internal_token_secret.get_secret_value(), webhook)
    async with transaction(request, caller) as connection:
        await acting_in(connection, caller, organization_id, role="admin")
        row = await repository.create_webhook(
            connection, organization_id, webhook, body.url, body.events,
            hashlib.sha256(secret.encode()).hexdigest(), caller.identity.user_id,
        )  # fmt: skip
        await audit(connection, caller, organization_id, "webhook.create", "webhook", webhook,
                    url=body.url, events=list(body.events))  # fmt: skip
    return {**dict(row), "secret": secret}


@router.delete(
    "/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT,
    responses={404: error_doc("no such webhook in this organization")},
)  # fmt: skip
async def delete_webhook(
    request: Request, caller: Caller, organization_id: UUID, webhook_id: UUID
) -> Response:
    caller.require_scope("admin")
    async with transaction(request, caller) as connection:
        await acting_in(connection, caller, organization_id, role="admin")
        if not await repository.delete_webhook(connection, organization_id, webhook_id):
            raise ProblemError(404, "unknown_webhook", "no such webhook in this organization")
        await audit(connection, caller, organization_id, "webhook.delete", "webhook", webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
