"""What every platform API route shares: the caller's transaction with database refusals
turned into problems, the organization and role checks, cursors, and the audit row."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import Query, Request

from valuecanvas.api_gateway import repository
from valuecanvas.api_gateway.caller import GatewayCaller, role_at_least
from valuecanvas.core.db import Connection, caller_transaction
from valuecanvas.core.errors import ProblemError, error_doc
from valuecanvas.core.requestid import current_request_id
from valuecanvas.core.state import get_state

Responses = dict[int | str, dict[str, Any]]
INVALID: Responses = {422: error_doc("a field is invalid (named in param)")}
Limit = Annotated[int, Query(ge=1, le=100, description="page size")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="the next_cursor of the previous page")
]


@asynccontextmanager
async def transaction(request: Request, caller: GatewayCaller) -> AsyncIterator[Connection]:
    """The caller's transaction (RLS decides every row); what the database refuses becomes
    a problem naming why, and the transaction is rolled back."""
    state = get_state(request)
    try:
        async with caller_transaction(
            state.pool, caller.identity, metrics=state.metrics
        ) as connection:
            yield connection
    except asyncpg.InsufficientPrivilegeError as exc:
        raise ProblemError(403, "forbidden", _first_line(exc)) from None
    except asyncpg.UniqueViolationError as exc:
        raise ProblemError(409, "already_exists", _unique_message(exc)) from None
    except asyncpg.CheckViolationError as exc:
        raise ProblemError(409, "conflict", _first_line(exc)) from None
    except asyncpg.ForeignKeyViolationError:
        raise ProblemError(404, "unknown_reference", "a referenced object does not exist") from None
    except (asyncpg.DataError, asyncpg.NotNullViolationError) as exc:
        raise ProblemError(422, "invalid_value", _first_line(exc)) from None


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:300]


def _unique_message(exc: asyncpg.UniqueViolationError) -> str:
    constraint = getattr(exc, "constraint_name", None) or ""
    if "slug" in constraint:
        return "an organization with this slug exists"
    if "pkey" in constraint:
        return "it exists already"
    return f"it exists already ({constraint})" if constraint else "it exists already"


@dataclass(frozen=True)
class Acting:
    organization: UUID
    role: str


async def acting_in(
    connection: Connection, caller: GatewayCaller, organization: UUID, *, role: str = "viewer"
) -> Acting:
    """The caller acts in ``organization`` (the one their token or key names) with at least
    ``role``; a 403 naming what is missing otherwise."""
    if caller.identity.organization_id != organization:
        raise ProblemError(
            403, "wrong_organization",
            "your credentials act in another organization (or none): use a token or key "
            "for this one",
            param="organization_id",
        )  # fmt: skip
    found = await repository.acting_role(connection)
    if found is None:
        raise ProblemError(403, "not_a_member", "you are not an active member of this organization")
    if not role_at_least(found, role):
        raise ProblemError(
            403, "insufficient_role", f"this needs the {role} role (yours: {found})", param="role"
        )  # fmt: skip
    return Acting(organization, found)


def user_tokens_only(caller: GatewayCaller, what: str) -> None:
    if caller.via != "user_token":
        raise ProblemError(
            403, "user_token_required", f"{what} needs a user's token, not an API key"
        )


async def audit(
    connection: Connection,
    caller: GatewayCaller,
    organization: UUID,
    action: str,
    resource_type: str,
    resource_id: object,
    **details: Any,
) -> None:
    if caller.api_key_id is not None:
        details["api_key_id"] = str(caller.api_key_id)
    await repository.audit(
        connection, caller.identity, organization, action, resource_type, resource_id,
        current_request_id(), details,
    )  # fmt: skip


def encode_cursor(*values: object) -> str:
    text = json.dumps(
        [
            v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, UUID) else v
            for v in values
        ]
    )
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, *kinds: type) -> tuple[Any, ...] | None:
    """The cursor's values as ``kinds`` (datetime, UUID, str, int); 422 if it is not one
    this API gave."""
    if cursor is None:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError
        decoded: list[Any] = []
        for kind, value in zip(kinds, values, strict=True):
            if kind is datetime:
                decoded.append(datetime.fromisoformat(value))
            elif kind is int:
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ValueError
                decoded.append(value)
            else:
                decoded.append(kind(value))
        return tuple(decoded)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ProblemError(
            422, "invalid_cursor", "cursor is not one this API gave", param="cursor"
        ) from None


def page(rows: list[asyncpg.Record], limit: int, *key: str) -> dict[str, Any]:
    """A page of ``limit`` rows (one more was fetched to know whether a next page exists)."""
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(*(rows[-1][column] for column in key)) if more and rows else None
    return {"data": [dict(row) for row in rows], "next_cursor": cursor}


# The order of the lists that show the newest first.
NEWEST_FIRST: dict[str, type] = {"created_at": datetime, "id": UUID}
Fetch = Callable[[Connection, UUID, int, Any], Awaitable[list[asyncpg.Record]]]


async def list_page(
    request: Request,
    caller: GatewayCaller,
    organization: UUID,
    *,
    limit: int,
    cursor: str | None,
    key: dict[str, type],
    fetch: Fetch,
    scope: str = "value-cases:read",
    role: str = "viewer",
) -> dict[str, Any]:
    """One page of an organization's list: the scope and role checked, the cursor decoded
    into the values of the list's unique order (``key``: column -> type), ``limit + 1``
    rows fetched to know whether another page follows."""
    caller.require_scope(scope)
    after = decode_cursor(cursor, *key.values())
    async with transaction(request, caller) as connection:
        await acting_in(connection, caller, organization, role=role)
        rows = await fetch(connection, organization, limit + 1, after)
    return page(rows, limit, *key)
