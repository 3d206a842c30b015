"""All of the llm-proxy's SQL: the ledger's inserts (as service_role) and the usage
report's reads (as the caller: row-level security decides which rows they see)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from uuid import UUID

import asyncpg

from valuecanvas.core.db import SERVICE_ROLE, Connection, Pool, caller_transaction
from valuecanvas.core.identity import Identity
from valuecanvas.generated.database import LlmUsageInsert

_COLUMNS = (
    "completion_id", "request_id", "user_id", "organization_id", "logical_model", "provider", "provider_model",
    "attempts", "prompt_tokens", "completion_tokens", "tokens_estimated", "cost_usd", "latency_ms",
    "status", "error", "streamed",
)  # fmt: skip
# Idempotent: a drainer that moves an entry twice (it died before acknowledging) adds no row.
_INSERT = f"""
insert into public.llm_usage ({", ".join(_COLUMNS)})
values ({", ".join(f"${index}" for index in range(1, len(_COLUMNS) + 1))})
on conflict (completion_id) do nothing
"""  # noqa: S608 (the column names are this module's constants)


async def insert_entries(pool: Pool, entries: Sequence[LlmUsageInsert]) -> None:
    async with caller_transaction(pool, SERVICE_ROLE) as connection:
        await connection.executemany(
            _INSERT, [tuple(getattr(entry, column) for column in _COLUMNS) for entry in entries]
        )


async def member_role(connection: Connection, caller: Identity) -> str | None:
    """The caller's role in the organization their token names, if they are a member."""
    if caller.organization_id is None or caller.user_id is None:
        return None
    role: str | None = await connection.fetchval(
        "select role from public.organization_members"
        " where organization_id = $1 and user_id = $2 and status = 'active'",
        caller.organization_id,
        caller.user_id,
    )
    return role


_USAGE_BY_DAY = """
select (created_at at time zone 'UTC')::date as day, user_id, organization_id, logical_model,
       count(*) as requests, sum(prompt_tokens) as prompt_tokens,
       sum(completion_tokens) as completion_tokens, sum(cost_usd) as cost_usd,
       count(*) filter (where status = 'failed') as errors
from public.llm_usage
-- Day arithmetic in Postgres: end + 1 overflows Python's date at 9999-12-31.
where created_at >= ($1::date)::timestamp at time zone 'UTC'
  and created_at < ($2::date + 1)::timestamp at time zone 'UTC'
  and ({column} = $3)
group by 1, 2, 3, 4
order by 1, 2, 3, 4
"""


async def usage_by_day(
    connection: Connection,
    start: date,
    end: date,
    *,
    user: UUID | None = None,
    organization: UUID | None = None,
) -> list[asyncpg.Record]:
    """Usage per day, user, organization and model, for one user or one organization."""
    column, subject = ("organization_id", organization) if organization else ("user_id", user)
    return list(await connection.fetch(_USAGE_BY_DAY.format(column=column), start, end, subject))
