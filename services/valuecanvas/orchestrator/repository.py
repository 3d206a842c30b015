"""All of the orchestrator's SQL.

What a caller asks for (start a run, read it, cancel it) runs in the caller's transaction,
so row-level security decides. What the engine records while a run goes on (a step's
progress, the result, webhook deliveries) has no caller at that moment: it runs as
service_role, always with the run's organization in the statement.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg

from valuecanvas.core.db import SERVICE_ROLE, Connection, Pool, as_service_role, caller_transaction

FINISHED = ("succeeded", "failed", "cancelled")


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def decoded(row: asyncpg.Record | None, *columns: str) -> dict[str, Any] | None:
    """A row as a dict, its jsonb columns decoded."""
    if row is None:
        return None
    found = dict(row)
    for column in columns:
        if isinstance(found.get(column), str):
            found[column] = json.loads(found[column])
    return found


@asynccontextmanager
async def engine_transaction(pool: Pool) -> AsyncIterator[Connection]:
    async with caller_transaction(pool, SERVICE_ROLE) as connection:
        yield connection


# Definitions.


async def ensure_builtin_definition(
    connection: Connection, organization: UUID, name: str, definition: dict[str, Any]
) -> UUID:
    """The organization's copy of a built-in definition (written as service_role, inside
    the caller's transaction, after the caller's own insert has proved them a writer)."""
    async with as_service_role(connection):
        found: UUID | None = await connection.fetchval(
            """insert into public.workflow_definitions (organization_id, name, version, status, definition)
               values ($1, $2, 1, 'active', $3::jsonb)
               on conflict (organization_id, name, version) do update set status = excluded.status
               returning id""",
            organization, name, _json(definition),
        )  # fmt: skip
    assert found is not None
    return found


async def create_definition(
    connection: Connection, organization: UUID, name: str, definition: dict[str, Any], user: UUID
) -> asyncpg.Record:
    row: asyncpg.Record | None = await connection.fetchrow(
        """insert into public.workflow_definitions
             (organization_id, name, version, status, definition, created_by)
           values ($1, $2,
                   coalesce((select max(version) + 1 from public.workflow_definitions
                             where organization_id = $1 and name = $2), 1),
                   'active', $3::jsonb, $4)
           returning id, name, version, status, definition, created_at""",
        organization, name, _json(definition), user,
    )  # fmt: skip
    assert row is not None
    return row


async def definition_by_name(connection: Connection, name: str) -> asyncpg.Record | None:
    """The newest active version the caller's organization has of ``name``."""
    row: asyncpg.Record | None = await connection.fetchrow(
        """select id, name, version, definition from public.workflow_definitions
           where organization_id = (select private.acting_organization_id())
             and name = $1 and status = 'active'
           order by version desc limit 1""",
        name,
    )
    return row


# Starting and reading runs (as the caller).


async def create_value_case(
    connection: Connection, organization: UUID, name: str, account_name: str | None,
    case_input: dict[str, Any],
) -> UUID:  # fmt: skip
    case: UUID = await connection.fetchval(
        """insert into public.value_cases (organization_id, name, account_name, status, input)
           values ($1, $2, $3, 'running', $4::jsonb) returning id""",
        organization, name, account_name, _json(case_input),
    )  # fmt: skip
    return case


async def create_execution(
    connection: Connection, organization: UUID, definition: UUID, run_input: dict[str, Any],
    user: UUID, value_case: UUID | None, steps: list[str], *, starting: bool,
) -> UUID:  # fmt: skip
    """The run's row: ``running`` when the engine is up and starts it right after the
    commit (``starting``), else ``pending`` until the engine launches and starts it."""
    progress = {step: {"status": "pending", "attempts": 0} for step in steps}
    execution: UUID = await connection.fetchval(
        """insert into public.workflow_executions
             (organization_id, workflow_definition_id, status, input, started_by, value_case_id,
              steps, started_at)
           values ($1, $2, case when $7 then 'running' else 'pending' end, $3::jsonb, $4, $5,
                   $6::jsonb, case when $7 then now() end)
           returning id""",
        organization, definition, _json(run_input), user, value_case, _json(progress), starting,
    )  # fmt: skip
    return execution


_EXECUTION = """select e.id, e.status, e.steps, e.output, e.error, e.failed_step, e.value_case_id,
       e.created_at, e.started_at, e.finished_at, e.updated_at, e.started_by,
       d.name as definition, d.version as definition_version, d.definition as spec
  from public.workflow_executions e
  join public.workflow_definitions d on d.id = e.workflow_definition_id"""


async def execution(connection: Connection, execution_id: UUID) -> dict[str, Any] | None:
    """The run: its row's step entries (``steps``, by id) and its definition (``spec``);
    progress.view makes the steps people see of them."""
    return decoded(
        await connection.fetchrow(_EXECUTION + " where e.id = $1", execution_id),
        "steps", "output", "spec",
    )  # fmt: skip


async def value_case(connection: Connection, case: UUID) -> dict[str, Any] | None:
    row = await connection.fetchrow(
        """select c.id, c.name, c.account_name, c.status, c.verdict, c.input, c.result,
                  c.created_at, c.updated_at,
                  (select e.id from public.workflow_executions e
                    where e.value_case_id = c.id order by e.created_at desc limit 1) as workflow_id
           from public.value_cases c where c.id = $1""",
        case,
    )
    return decoded(row, "input", "result")


async def request_cancel(connection: Connection, execution_id: UUID) -> str | None:
    """Mark a run cancelled (as the caller: its starter or an admin may). The status it had,
    or None when the caller may not, or it does not exist."""
    row = await connection.fetchrow(
        """with before as (
             select id, status from public.workflow_executions where id = $1 for update)
           update public.workflow_executions e
              set status = case when before.status in ('succeeded', 'failed', 'cancelled')
                                then e.status else 'cancelled' end,
                  started_at = coalesce(e.started_at, now()),
                  finished_at = coalesce(e.finished_at, now())
             from before where e.id = before.id
           returning before.status""",
        execution_id,
    )
    return None if row is None else str(row["status"])


# What the engine records (service_role, the organization in every statement).


async def unfinished(pool: Pool) -> list[dict[str, Any]]:
    """Runs not ended (pending or running), oldest first, every organization: the engine
    starts those it has no workflow of."""
    async with engine_transaction(pool) as connection:
        rows = await connection.fetch(
            """select e.id, e.status, e.organization_id, e.started_by, e.input, e.value_case_id,
                      d.name, d.definition
                 from public.workflow_executions e
                 join public.workflow_definitions d on d.id = e.workflow_definition_id
                where e.status in ('pending', 'running') and e.started_by is not null
                order by e.created_at"""
        )
    return [found for row in rows if (found := decoded(row, "input", "definition"))]


async def step_progress(
    pool: Pool, organization: UUID, execution_id: UUID, step: str, progress: dict[str, Any]
) -> bool:
    """Merge ``progress`` into the step's entry (status, attempts, times, error). False when
    the run was cancelled meanwhile (nothing is written then)."""
    async with engine_transaction(pool) as connection:
        # Progress is for people watching; the engine's checkpoints are the durable record.
        # Not waiting for its WAL flush saves a disk sync per write.
        await connection.execute("set local synchronous_commit = off")
        written = await connection.fetchval(
            """update public.workflow_executions
                  set steps = jsonb_set(steps, array[$3::text],
                                        coalesce(steps -> $3, '{}'::jsonb) || $4::jsonb),
                      status = case when status = 'pending' then 'running' else status end,
                      started_at = coalesce(started_at, now())
                where id = $1 and organization_id = $2 and status <> 'cancelled'
                returning true""",
            execution_id, organization, step, _json(progress),
        )  # fmt: skip
    return bool(written)


async def run_started(pool: Pool, organization: UUID, execution_id: UUID) -> None:
    """The run marked running (as step_progress, not waiting for the WAL flush)."""
    async with engine_transaction(pool) as connection:
        await connection.execute("set local synchronous_commit = off")
        await connection.execute(
            """update public.workflow_executions
                  set status = 'running', started_at = coalesce(started_at, now())
                where id = $1 and organization_id = $2 and status = 'pending'""",
            execution_id, organization,
        )  # fmt: skip


async def finish(
    pool: Pool, organization: UUID, execution_id: UUID, *, status: str, user: UUID,
    events: list[str], steps: dict[str, dict[str, Any]], output: dict[str, Any] | None = None,
    error: str | None = None,
    failed_step: str | None = None, step_error: str | None = None, verdict: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Record the run's end (the succeeded steps' progress, the failed step's, the value
    case's) in one transaction; a run already cancelled stays so. Returns whether this call recorded it,
    when, and the webhooks each event goes to (webhook_targets), so that the engine
    checkpoints all of it at once."""
    async with engine_transaction(pool) as connection:
        row = await connection.fetchrow(
            """update public.workflow_executions
                  set status = $3, output = $4::jsonb, error = $5, failed_step = $6,
                      steps = case when $6::text is null then steps || $8::jsonb
                                   else jsonb_set(steps || $8::jsonb, array[$6::text],
                                        coalesce(steps -> $6, '{}'::jsonb)
                                        || jsonb_build_object('status', 'failed', 'error', $7::text,
                                                              'finished_at', now()))
                              end,
                      started_at = coalesce(started_at, now()), finished_at = now()
                where id = $1 and organization_id = $2 and status not in ('succeeded', 'failed', 'cancelled')
                returning value_case_id, finished_at""",
            execution_id, organization, status, None if output is None else _json(output),
            None if error is None else error[:10_000], failed_step, step_error, _json(steps),
        )  # fmt: skip
        if row is None:
            return {"recorded": False, "finished_at": None, "targets": {}}
        if row["value_case_id"] is not None:
            case_status = "failed" if status != "succeeded" else (
                "approved" if verdict == "pass" else "completed")  # fmt: skip
            await connection.execute(
                """update public.value_cases set status = $3, verdict = $4,
                          result = coalesce($5::jsonb, result)
                    where id = $1 and organization_id = $2""",
                row["value_case_id"], organization, case_status, verdict,
                None if output is None else _json(output),
            )  # fmt: skip
        targets = {event: await _webhook_targets(connection, organization, user, event)
                   for event in events}  # fmt: skip
        return {"recorded": True, "finished_at": row["finished_at"].isoformat(), "targets": targets}


async def cancel_value_case(pool: Pool, organization: UUID, execution_id: UUID) -> None:
    async with engine_transaction(pool) as connection:
        await connection.execute(
            """update public.value_cases c set status = 'failed'
                 from public.workflow_executions e
                where e.id = $1 and e.organization_id = $2 and c.id = e.value_case_id
                  and c.status = 'running'""",
            execution_id, organization,
        )  # fmt: skip


async def _webhook_targets(
    connection: Connection, organization: UUID, user: UUID, event: str
) -> list[dict[str, str]]:
    """The organization's active webhooks that want ``event``, unless the run's starter
    turned webhook notifications of that event off (notification_preferences)."""
    rows = await connection.fetch(
        """select w.id::text as id, w.url from public.webhooks w
            where w.organization_id = $1 and w.active and $3 = any (w.events)
              and not exists (
                select from public.notification_preferences p
                 where p.user_id = $2 and p.organization_id = $1 and p.channel = 'webhook'
                   and p.event_type = $3 and not p.enabled)
            order by w.created_at, w.id""",
        organization, user, event,
    )  # fmt: skip
    return [dict(row) for row in rows]


async def record_delivery(
    pool: Pool, organization: UUID, webhook: UUID, execution_id: UUID, event: str, *,
    attempt: int, status_code: int | None, error: str | None, succeeded: bool, duration_ms: int,
) -> None:  # fmt: skip
    async with engine_transaction(pool) as connection:
        await connection.execute(
            """insert into public.webhook_deliveries
                 (organization_id, webhook_id, workflow_execution_id, event, attempt, status_code,
                  error, succeeded, duration_ms)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            organization, webhook, execution_id, event, attempt, status_code,
            None if error is None else error[:1000], succeeded, duration_ms,
        )  # fmt: skip
