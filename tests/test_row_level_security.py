"""Row-level security on every one of the 18 tables, through the services' own path:
a non-superuser login role and :func:`caller_transaction` setting role and claims.

Two organizations (A and B) and one user of each kind: an admin of A, a member of A, an
admin of B (the cross-organization attacker), a signed-in outsider, and anon. For every
table, each of them tries to SELECT, INSERT, UPDATE and DELETE organization A's fixture
row; the matrix below says exactly which must succeed. Everything else must return nothing
or fail. Each attempt is rolled back, so attempts do not influence each other.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg
import pytest

from tests.support.servers import Database
from valuecanvas.core.db import caller_transaction
from valuecanvas.core.identity import Identity

ORG_A, ORG_B = uuid.uuid4(), uuid.uuid4()
ADMIN_A, MEMBER_A, ADMIN_B, OUTSIDER, SPARE, NEWCOMER = (uuid.uuid4() for _ in range(6))
ACTORS = ("admin_a", "member_a", "admin_b", "outsider", "anon")


def identity(actor: str) -> Identity:
    if actor == "anon":
        return Identity(user_id=None, organization_id=None, role="anon", via="user_token")
    user, organization = {
        "admin_a": (ADMIN_A, ORG_A),
        "member_a": (MEMBER_A, ORG_A),
        "admin_b": (ADMIN_B, ORG_B),
        "outsider": (OUTSIDER, None),
        "newcomer": (NEWCOMER, None),
    }[actor]
    return Identity(
        user_id=user, organization_id=organization, role="authenticated", via="user_token"
    )


def uid(actor: str) -> uuid.UUID | None:
    return identity(actor).user_id


# Per organization: the ids of the parent rows the fixture rows hang on.
@dataclass(frozen=True)
class Org:
    id: uuid.UUID
    admin: uuid.UUID
    team: uuid.UUID
    role: uuid.UUID
    definition: uuid.UUID
    execution: uuid.UUID
    starter: uuid.UUID  # who started the fixture execution, owns the sessions/preferences


ORGS = {
    "A": Org(ORG_A, ADMIN_A, uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), MEMBER_A),
    "B": Org(ORG_B, ADMIN_B, uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), ADMIN_B),
}


@dataclass(frozen=True)
class TableCase:
    table: str
    keys: tuple[str, ...]
    fixture: Callable[[Org], dict[str, Any]]  # the row each organization starts with
    new_row: Callable[[str], dict[str, Any]]  # what an actor tries to insert into A
    update: str  # a harmless SET clause
    # Which actors may (select, insert, update, delete) organization A's row.
    allowed: dict[str, str]


def _hex(seed: str) -> str:
    return (seed * 64)[:64]


def _invoice_number() -> str:
    return f"INV-{uuid.uuid4().hex[:8].upper()}"


MEMBERS_READ_ADMINS_MANAGE = {"admin_a": "SIUD", "member_a": "S"}

CASES = [
    TableCase(
        "organizations",
        ("id",),
        lambda o: {"id": o.id, "name": f"Org {o.id}", "slug": f"org-{o.id.hex[:8]}"},
        lambda actor: {"name": "New", "slug": f"new-{uuid.uuid4().hex[:8]}"},
        "name = name || '!'",
        {"admin_a": "SU", "member_a": "S"},
    ),
    TableCase(
        "organization_members",
        ("organization_id", "user_id"),
        lambda o: (
            {"organization_id": o.id, "user_id": o.starter, "role": "member"}
            if o.id == ORG_A
            else {"organization_id": o.id, "user_id": SPARE, "role": "member"}
        ),
        lambda actor: {"organization_id": ORG_A, "user_id": OUTSIDER, "role": "member"},
        "role = 'viewer'",
        MEMBERS_READ_ADMINS_MANAGE,
    ),
    TableCase(
        "teams",
        ("id",),
        lambda o: {"id": o.team, "organization_id": o.id, "name": "Core"},
        lambda actor: {"organization_id": ORG_A, "name": f"Team {uuid.uuid4().hex[:6]}"},
        "description = 'changed'",
        MEMBERS_READ_ADMINS_MANAGE,
    ),
    TableCase(
        "team_members",
        ("team_id", "user_id"),
        lambda o: {"team_id": o.team, "organization_id": o.id, "user_id": o.admin},
        lambda actor: {"team_id": ORGS["A"].team, "organization_id": ORG_A, "user_id": MEMBER_A},
        "role = 'lead'",
        MEMBERS_READ_ADMINS_MANAGE,
    ),
    TableCase(
        "roles",
        ("id",),
        lambda o: {"id": o.role, "organization_id": o.id, "key": "analyst", "name": "Analyst"},
        lambda actor: {"organization_id": ORG_A, "key": f"k{uuid.uuid4().hex[:6]}", "name": "K"},
        "description = 'changed'",
        MEMBERS_READ_ADMINS_MANAGE,
    ),
    TableCase(
        "user_roles",
        ("user_id", "role_id", "organization_id"),
        lambda o: {"user_id": o.admin, "role_id": o.role, "organization_id": o.id},
        lambda actor: {"user_id": MEMBER_A, "role_id": ORGS["A"].role, "organization_id": ORG_A},
        "granted_by = user_id",
        {"admin_a": "SID", "member_a": "S"},  # grants are replaced, never edited
    ),
    TableCase(
        "user_sessions",
        ("id",),
        lambda o: {
            "id": uuid.uuid4(),
            "user_id": o.starter,
            "organization_id": o.id,
            "expires_at_sql": "now() + interval '1 hour'",
        },
        lambda actor: {
            "user_id": uid(actor),
            "organization_id": ORG_A,
            "expires_at_sql": "now() + interval '1 hour'",
        },
        "last_seen_at = now()",
        # Only the session's own user; anyone in A may open their own session in A.
        {"admin_a": "I", "member_a": "SIUD"},
    ),
    TableCase(
        "audit_logs",
        ("id",),
        lambda o: {"organization_id": o.id, "actor_user_id": o.admin, "action": "org.created"},
        lambda actor: {"organization_id": ORG_A, "actor_user_id": uid(actor), "action": "x.done"},
        "action = 'tampered'",
        {"admin_a": "SI", "member_a": "I"},  # append-only; read by admins
    ),
    TableCase(
        "integrations",
        ("id",),
        lambda o: {
            "id": uuid.uuid4(),
            "organization_id": o.id,
            "provider": "hubspot",
            "name": "CRM",
        },
        lambda actor: {"organization_id": ORG_A, "provider": "slack", "name": uuid.uuid4().hex},
        "status = 'active'",
        MEMBERS_READ_ADMINS_MANAGE,
    ),
    TableCase(
        "api_keys",
        ("id",),
        lambda o: {
            "id": uuid.uuid4(),
            "organization_id": o.id,
            "name": "ci",
            "key_prefix": "vc_live",
            "key_hash": _hex(uuid.uuid4().hex),
        },
        lambda actor: {
            "organization_id": ORG_A,
            "name": "new",
            "key_prefix": "vc_test",
            "key_hash": _hex(uuid.uuid4().hex),
        },
        "name = 'renamed'",
        {"admin_a": "SIUD"},
    ),
    TableCase(
        "webhooks",
        ("id",),
        lambda o: {
            "id": uuid.uuid4(),
            "organization_id": o.id,
            "url": "https://example.test/h",
            "events": ["workflow.finished"],
        },
        lambda actor: {"organization_id": ORG_A, "url": "https://example.test/n", "events": ["x"]},
        "active = false",
        MEMBERS_READ_ADMINS_MANAGE,
    ),
    TableCase(
        "notification_preferences",
        ("user_id", "organization_id", "channel", "event_type"),
        lambda o: {
            "user_id": o.starter,
            "organization_id": o.id,
            "channel": "email",
            "event_type": "workflow.finished",
        },
        lambda actor: {
            "user_id": uid(actor),
            "organization_id": ORG_A,
            "channel": "slack",
            "event_type": "value.realized",
        },
        "enabled = false",
        {"admin_a": "I", "member_a": "SIUD"},  # as sessions
    ),
    TableCase(
        "billing_invoices",
        ("id",),
        lambda o: {
            "id": uuid.uuid4(),
            "organization_id": o.id,
            "invoice_number": _invoice_number(),
            "subtotal_cents": 10_000,
            "period_start": date(2026, 10, 1),
            "period_end": date(2026, 11, 1),
        },
        lambda actor: {
            "organization_id": ORG_A,
            "invoice_number": _invoice_number(),
            "subtotal_cents": 1,
            "period_start": date(2026, 10, 1),
            "period_end": date(2026, 11, 1),
        },
        "tax_cents = 1",
        {"admin_a": "S"},  # written by the billing system (service_role) only
    ),
    TableCase(
        "policy_enforcement",
        ("id",),
        lambda o: {
            "id": uuid.uuid4(),
            "organization_id": o.id,
            "policy_key": "llm.max_cost",
            "scope": "llm",
            "action": "block",
        },
        lambda actor: {
            "organization_id": ORG_A,
            "policy_key": f"p.{uuid.uuid4().hex[:6]}",
            "scope": "data",
            "action": "warn",
        },
        "enabled = false",
        MEMBERS_READ_ADMINS_MANAGE,
    ),
    TableCase(
        "workflow_definitions",
        ("id",),
        lambda o: {
            "id": o.definition,
            "organization_id": o.id,
            "name": "Business case",
            "definition": {"steps": []},
        },
        lambda actor: {"organization_id": ORG_A, "name": uuid.uuid4().hex, "definition": {}},
        "status = 'active'",
        MEMBERS_READ_ADMINS_MANAGE,
    ),
    TableCase(
        "workflow_executions",
        ("id",),
        lambda o: {
            "id": o.execution,
            "organization_id": o.id,
            "workflow_definition_id": o.definition,
            "started_by": o.starter,
        },
        lambda actor: {
            "organization_id": ORG_A,
            "workflow_definition_id": ORGS["A"].definition,
            "started_by": uid(actor),
        },
        "status = 'running', started_at = now()",
        # Members start runs; the starter (member_a here) or an admin updates; admins delete.
        {"admin_a": "SIUD", "member_a": "SIU"},
    ),
    TableCase(
        "agent_audit_log",
        ("id",),
        lambda o: {
            "organization_id": o.id,
            "agent": "integrity",
            "action": "numbers.checked",
            "user_id": o.starter,
        },
        lambda actor: {
            "organization_id": ORG_A,
            "agent": "target",
            "action": "case.built",
            "user_id": uid(actor),
        },
        "verdict = 'fail'",
        {"admin_a": "SI", "member_a": "SI"},  # append-only
    ),
]

PARENTS_FIRST = [
    "organizations", "organization_members", "teams", "team_members", "roles", "user_roles",
    "workflow_definitions", "workflow_executions",
]  # fmt: skip


def _columns_and_values(row: dict[str, Any]) -> tuple[list[str], list[str], list[Any]]:
    """Column names, SQL placeholders and values; ``*_sql`` keys are SQL expressions."""
    columns, placeholders, values = [], [], []
    for column, value in row.items():
        if column.endswith("_sql"):
            columns.append(column.removesuffix("_sql"))
            placeholders.append(value)
            continue
        columns.append(column)
        values.append(json.dumps(value) if isinstance(value, dict) else value)
        placeholders.append(f"${len(values)}")
    return columns, placeholders, values


async def insert(
    connection: Any, table: str, row: dict[str, Any], *, returning: bool = True
) -> Any:
    columns, placeholders, values = _columns_and_values(row)
    statement = (
        f"insert into public.{table} ({', '.join(columns)}) values ({', '.join(placeholders)})"
    )
    if returning:
        return await connection.fetchrow(statement + " returning *", *values)
    return await connection.execute(statement, *values)


@pytest.fixture
async def world(database: Database) -> AsyncIterator[dict[str, asyncpg.Record]]:
    """Both organizations, their people and one fixture row per table; A's rows by table."""
    owner = await asyncpg.connect(database.owner_dsn)
    rows_a: dict[str, asyncpg.Record] = {}
    try:
        for name, user in [("admin-a", ADMIN_A), ("member-a", MEMBER_A), ("admin-b", ADMIN_B),
                           ("outsider", OUTSIDER), ("spare", SPARE)]:  # fmt: skip
            await insert(owner, "users", {"id": user, "email": f"{name}@example.test"})
        ordered = sorted(
            CASES, key=lambda c: PARENTS_FIRST.index(c.table) if c.table in PARENTS_FIRST else 99
        )
        for case in ordered:
            for label, org in ORGS.items():
                if case.table == "organization_members":
                    await insert(
                        owner,
                        case.table,
                        {"organization_id": org.id, "user_id": org.admin, "role": "admin"},
                    )
                row = await insert(owner, case.table, case.fixture(org))
                if label == "A":
                    rows_a[case.table] = row
        yield rows_a
    finally:
        await owner.close()


@pytest.fixture
async def app_pool(database: Database) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database.app_dsn, min_size=1, max_size=2)
    yield pool
    await pool.close()


class _RollbackRequestedError(Exception):
    pass


async def attempt(pool: asyncpg.Pool, actor: str, operation: Callable[[Any], Any]) -> Any:
    """Run one operation as the actor and roll it back; returns its result or its error."""
    outcome: Any = None
    try:
        async with caller_transaction(pool, identity(actor)) as connection:
            try:
                async with connection.transaction():
                    outcome = await operation(connection)
            except asyncpg.PostgresError as exc:
                outcome = exc
            raise _RollbackRequestedError
    except _RollbackRequestedError:
        pass
    return outcome


def where_clause(case: TableCase, row: asyncpg.Record) -> tuple[str, list[Any]]:
    return " and ".join(f"{key} = ${i}" for i, key in enumerate(case.keys, 1)), [
        row[k] for k in case.keys
    ]


def affected(status: Any) -> bool:
    return isinstance(status, str) and status.split()[-1] == "1"


@pytest.mark.parametrize("case", CASES, ids=[case.table for case in CASES])
async def test_each_actor_reaches_exactly_what_the_policies_allow(
    case: TableCase, world: dict[str, asyncpg.Record], app_pool: asyncpg.Pool
) -> None:
    row = world[case.table]
    where, keys = where_clause(case, row)
    observed: dict[str, str] = {}
    for actor in ACTORS:
        can = ""
        seen = await attempt(
            app_pool,
            actor,
            lambda c: c.fetchval(f"select count(*) from public.{case.table} where {where}", *keys),
        )
        can += "S" if seen == 1 else ""
        new_row = case.new_row(actor)
        # No RETURNING: it would also need the SELECT policy (audit_logs: members append only).
        inserted = await attempt(
            app_pool, actor, lambda c, row=new_row: insert(c, case.table, row, returning=False)
        )
        can += "I" if inserted == "INSERT 0 1" else ""
        updated = await attempt(
            app_pool,
            actor,
            lambda c: c.execute(
                f"update public.{case.table} set {case.update} where {where}", *keys
            ),
        )
        can += "U" if affected(updated) else ""
        deleted = await attempt(
            app_pool,
            actor,
            lambda c: c.execute(f"delete from public.{case.table} where {where}", *keys),
        )
        can += "D" if affected(deleted) else ""
        observed[actor] = can

    expected = {actor: case.allowed.get(actor, "") for actor in ACTORS}
    assert observed == expected


@pytest.mark.parametrize("case", CASES, ids=[case.table for case in CASES])
async def test_anon_and_other_organizations_see_none_of_a_rows(
    case: TableCase, world: dict[str, asyncpg.Record], app_pool: asyncpg.Pool
) -> None:
    for actor in ("anon", "admin_b", "outsider"):
        rows = await attempt(
            app_pool, actor, lambda c: c.fetch(f"select * from public.{case.table}")
        )
        visible_orgs = {r["organization_id"] if "organization_id" in r else r["id"] for r in rows}
        assert ORG_A not in visible_orgs, f"{actor} sees organization A's {case.table}"
        if actor == "anon":
            assert rows == [], f"anon sees {case.table}"


async def test_users_read_themselves_and_colleagues_and_edit_only_themselves(
    world: dict[str, asyncpg.Record], app_pool: asyncpg.Pool
) -> None:
    async def visible(actor: str) -> set[uuid.UUID]:
        rows = await attempt(app_pool, actor, lambda c: c.fetch("select id from public.users"))
        return {row["id"] for row in rows}

    assert await visible("member_a") == {ADMIN_A, MEMBER_A}
    assert await visible("admin_b") == {ADMIN_B, SPARE}
    assert await visible("outsider") == {OUTSIDER}
    assert await visible("anon") == set()

    own = await attempt(
        app_pool,
        "member_a",
        lambda c: c.execute("update public.users set full_name = 'Me' where id = $1", MEMBER_A),
    )
    other = await attempt(
        app_pool,
        "admin_a",
        lambda c: c.execute("update public.users set full_name = 'Not me' where id = $1", MEMBER_A),
    )
    assert (own, other) == ("UPDATE 1", "UPDATE 0")

    self_signup = await attempt(
        app_pool,
        "newcomer",
        lambda c: insert(c, "users", {"id": NEWCOMER, "email": "new@example.test"}),
    )
    impostor = await attempt(
        app_pool,
        "newcomer",
        lambda c: insert(c, "users", {"id": uuid.uuid4(), "email": "fake@example.test"}),
    )
    assert isinstance(self_signup, asyncpg.Record)
    assert isinstance(impostor, asyncpg.InsufficientPrivilegeError)


@pytest.mark.parametrize("table", ["audit_logs", "agent_audit_log"])
async def test_audit_trails_are_append_only_even_for_the_owner(
    table: str, world: dict[str, asyncpg.Record], database: Database
) -> None:
    owner = await asyncpg.connect(database.owner_dsn)
    try:
        for statement in (f"update public.{table} set action = 'x.y'", f"delete from public.{table}",
                          f"truncate public.{table} cascade"):  # fmt: skip
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await owner.execute(statement)
    finally:
        await owner.close()


async def test_an_execution_with_an_agent_audit_trail_cannot_be_deleted(
    world: dict[str, asyncpg.Record], database: Database, app_pool: asyncpg.Pool
) -> None:
    owner = await asyncpg.connect(database.owner_dsn)
    try:
        await insert(owner, "agent_audit_log", {
            "organization_id": ORG_A, "agent": "orchestrator", "action": "step.finished",
            "user_id": MEMBER_A, "workflow_execution_id": ORGS["A"].execution})  # fmt: skip
    finally:
        await owner.close()

    outcome = await attempt(
        app_pool,
        "admin_a",
        lambda c: c.execute(
            "delete from public.workflow_executions where id = $1", ORGS["A"].execution
        ),
    )

    assert isinstance(outcome, asyncpg.ForeignKeyViolationError)


async def test_service_role_reaches_every_table(
    world: dict[str, asyncpg.Record], app_pool: asyncpg.Pool
) -> None:
    service = Identity(
        user_id=None, organization_id=None, role="service_role", via="internal_token"
    )
    for case in CASES:
        async with caller_transaction(app_pool, service) as connection:
            count = await connection.fetchval(f"select count(*) from public.{case.table}")
        assert count >= 2, case.table


async def test_claims_do_not_carry_over_to_the_next_transaction(
    world: dict[str, asyncpg.Record], database: Database
) -> None:
    pool = await asyncpg.create_pool(database.app_dsn, min_size=1, max_size=1)
    try:
        async with caller_transaction(pool, identity("admin_a")) as connection:
            assert await connection.fetchval("select count(*) from public.api_keys") == 1
            backend = await connection.fetchval("select pg_backend_pid()")

        async with pool.acquire() as connection, connection.transaction():
            assert (
                await connection.fetchval("select pg_backend_pid()") == backend
            )  # same connection
            assert await connection.fetchval("select current_user") == "test_app"
            assert not await connection.fetchval(
                "select current_setting('request.jwt.claims', true)"
            )
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.fetchval("select count(*) from public.api_keys")

        async with caller_transaction(pool, identity("anon")) as connection:
            assert await connection.fetchval("select pg_backend_pid()") == backend
            assert await connection.fetchval("select auth.uid()") is None
            assert await connection.fetchval("select count(*) from public.api_keys") == 0

        async with caller_transaction(pool, identity("member_a")) as connection:
            assert await connection.fetchval("select auth.uid()") == MEMBER_A
            assert await connection.fetchval("select count(*) from public.api_keys") == 0
    finally:
        await pool.close()
