"""Row-level security on every table (the spec's 18 and the platform's own), through the services' own path:
a non-superuser login role and :func:`caller_transaction` setting role and claims.

Two organizations (A and B) and one user of each kind: an owner, an admin, a member and a
viewer of A, an admin of B (the cross-organization attacker), a signed-in outsider, and
anon. For every
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

from tests.support.rows import add_member, add_organization
from tests.support.servers import Database
from valuecanvas.core.db import caller_transaction
from valuecanvas.core.identity import Identity

ORG_A, ORG_B = uuid.uuid4(), uuid.uuid4()
OWNER_A, ADMIN_A, MEMBER_A, VIEWER_A, ADMIN_B, OUTSIDER, SPARE, NEWCOMER = (
    uuid.uuid4() for _ in range(8)
)
ACTORS = ("owner_a", "admin_a", "member_a", "viewer_a", "admin_b", "outsider", "anon")


def identity(actor: str) -> Identity:
    if actor == "anon":
        return Identity(user_id=None, organization_id=None, role="anon", via="user_token")
    user, organization = {
        "owner_a": (OWNER_A, ORG_A),
        "admin_a": (ADMIN_A, ORG_A),
        "member_a": (MEMBER_A, ORG_A),
        "viewer_a": (VIEWER_A, ORG_A),
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
    case: uuid.UUID  # its value case


ORGS = {
    "A": Org(ORG_A, ADMIN_A, uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), MEMBER_A,
             uuid.uuid4()),
    "B": Org(ORG_B, ADMIN_B, uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), ADMIN_B,
             uuid.uuid4()),
}  # fmt: skip


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


MEMBERS_READ_ADMINS_MANAGE = {
    "owner_a": "SIUD",
    "admin_a": "SIUD",
    "member_a": "S",
    "viewer_a": "S",
}
ADMINS_ONLY = {"owner_a": "S", "admin_a": "S"}
# Members record and correct (viewers read); admins also delete.
WRITERS_RECORD_ADMINS_DELETE = {
    "owner_a": "SIUD",
    "admin_a": "SIUD",
    "member_a": "SIU",
    "viewer_a": "S",
}

CASES = [
    TableCase(
        "organizations",
        ("id",),
        lambda o: {"id": o.id, "name": f"Org {o.id}", "slug": f"org-{o.id.hex[:8]}"},
        lambda actor: {"name": "New", "slug": f"new-{uuid.uuid4().hex[:8]}"},
        "name = name || '!'",
        {"owner_a": "SU", "admin_a": "SU", "member_a": "S", "viewer_a": "S"},
    ),
    TableCase(
        "organization_members",
        ("organization_id", "user_id"),
        lambda o: (
            {"organization_id": o.id, "user_id": o.starter, "role": "member", "status": "active"}
            if o.id == ORG_A
            else {"organization_id": o.id, "user_id": SPARE, "role": "member", "status": "active"}
        ),
        # An invitation (admins may make nothing else).
        lambda actor: {
            "organization_id": ORG_A,
            "user_id": OUTSIDER,
            "role": "member",
            "status": "invited",
            "invited_by": uid(actor),
        },
        "role = 'viewer'",
        # The fixture row is member_a's own membership: they may leave.
        {**MEMBERS_READ_ADMINS_MANAGE, "member_a": "SD"},
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
        # grants are replaced, never edited
        {"owner_a": "SID", "admin_a": "SID", "member_a": "S", "viewer_a": "S"},
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
        # Only the session's own user reads it; sessions are made by the auth system
        # (service_role), and revoking is the only change (test below).
        {"member_a": "S"},
    ),
    TableCase(
        "audit_logs",
        ("id",),
        lambda o: {"organization_id": o.id, "actor_user_id": o.admin, "action": "org.created"},
        lambda actor: {"organization_id": ORG_A, "actor_user_id": uid(actor), "action": "x.done"},
        "action = 'tampered'",
        # append-only; read by admins
        {"owner_a": "SI", "admin_a": "SI", "member_a": "I", "viewer_a": "I"},
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
        {"owner_a": "SIUD", "admin_a": "SIUD"},
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
        # one's own; anyone in A may set their own for A
        {"owner_a": "I", "admin_a": "I", "member_a": "SIUD", "viewer_a": "I"},
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
        ADMINS_ONLY,  # written by the billing system (service_role) only
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
        # Members start runs (viewers do not); the starter (member_a here) or an admin
        # updates; admins delete.
        {"owner_a": "SIUD", "admin_a": "SIUD", "member_a": "SIU", "viewer_a": "S"},
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
        # append-only, and appended by the agents only (test below): members read
        {"owner_a": "S", "admin_a": "S", "member_a": "S", "viewer_a": "S"},
    ),
    TableCase(
        "value_cases",
        ("id",),
        lambda o: {"id": o.case, "organization_id": o.id, "name": "Acme renewal"},
        lambda actor: {"organization_id": ORG_A, "name": f"Case {uuid.uuid4().hex[:6]}"},
        "status = 'running'",
        WRITERS_RECORD_ADMINS_DELETE,
    ),
    TableCase(
        "kpi_measurements",
        ("id",),
        lambda o: {
            "organization_id": o.id,
            "value_case_id": o.case,
            "kpi": "dso",
            "measured_on": date(2026, 1, 31),
            "value": 41,
        },
        lambda actor: {
            "organization_id": ORG_A,
            "value_case_id": ORGS["A"].case,
            "kpi": "dso",
            "measured_on": date(2026, 2, 28),
            "value": 39,
        },
        "value = value + 1",
        WRITERS_RECORD_ADMINS_DELETE,
    ),
    TableCase(
        "products",
        ("id",),
        lambda o: {
            "organization_id": o.id,
            "sku": f"own-{o.id.hex[:8]}",
            "name": "Own",
            "family": "own",
            "improves_kpis": ["dso"],
            "typical_uplift": 0.1,
            "annual_price": 100,
        },
        lambda actor: {
            "organization_id": ORG_A,
            "sku": f"new-{uuid.uuid4().hex[:8]}",
            "name": "New",
            "family": "own",
            "improves_kpis": ["dso"],
            "typical_uplift": 0.1,
            "annual_price": 100,
        },
        "annual_price = annual_price + 1",
        MEMBERS_READ_ADMINS_MANAGE,
    ),
    TableCase(
        "webhook_deliveries",
        ("id",),
        lambda o: {
            "organization_id": o.id,
            "webhook_id_sql": "(select id from public.webhooks where organization_id = "
            f"'{o.id}' order by created_at limit 1)",
            "workflow_execution_id": o.execution,
            "event": "workflow.completed",
            "attempt": 1,
            "status_code": 200,
            "succeeded": True,
            "duration_ms": 5,
        },
        lambda actor: {
            "organization_id": ORG_A,
            "webhook_id_sql": "(select id from public.webhooks where organization_id = "
            f"'{ORG_A}' order by created_at limit 1)",
            "event": "workflow.failed",
            "attempt": 2,
            "succeeded": False,
            "duration_ms": 9,
        },
        "succeeded = false",
        # written by the orchestrator (service_role) only; read by admins, like the webhooks
        ADMINS_ONLY,
    ),
    TableCase(
        "value_drivers",
        ("id",),
        lambda o: {
            "organization_id": o.id,
            "driver": f"own-{o.id.hex[:8]}",
            "name": "Own",
            "kpi": "dso",
            "unit": "days",
            "direction": "decrease",
            "value_basis": "annual_revenue",
            "value_factor": 0.001,
            "formula": "annual_revenue x 0.001",
            "typical_baseline_low": 30,
            "typical_baseline_high": 60,
            "typical_improvement": 0.1,
            "keywords": ["own pain"],
        },
        lambda actor: {
            "organization_id": ORG_A,
            "driver": f"new-{uuid.uuid4().hex[:8]}",
            "name": "New",
            "kpi": "dso",
            "unit": "days",
            "direction": "decrease",
            "value_basis": "annual_revenue",
            "value_factor": 0.001,
            "formula": "annual_revenue x 0.001",
            "typical_baseline_low": 30,
            "typical_baseline_high": 60,
            "typical_improvement": 0.1,
            "keywords": ["new pain"],
        },
        "value_factor = value_factor * 2",
        MEMBERS_READ_ADMINS_MANAGE,
    ),
]

PARENTS_FIRST = [
    "organizations", "organization_members", "teams", "team_members", "roles", "user_roles",
    "workflow_definitions", "workflow_executions", "value_cases",
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
        for name, user in [("owner-a", OWNER_A), ("admin-a", ADMIN_A), ("member-a", MEMBER_A),
                           ("viewer-a", VIEWER_A), ("admin-b", ADMIN_B), ("outsider", OUTSIDER),
                           ("spare", SPARE)]:  # fmt: skip
            await insert(owner, "users", {"id": user, "email": f"{name}@example.test"})
        ordered = sorted(
            CASES, key=lambda c: PARENTS_FIRST.index(c.table) if c.table in PARENTS_FIRST else 99
        )
        for case in ordered:
            for label, org in ORGS.items():
                if case.table == "organization_members":
                    people = [(org.admin, "owner" if label == "B" else "admin")]
                    if label == "A":
                        people += [(OWNER_A, "owner"), (VIEWER_A, "viewer")]
                    for user, role in people:
                        await insert(owner, case.table, {
                            "organization_id": org.id, "user_id": user, "role": role,
                            "status": "active"})  # fmt: skip
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
    anon = await attempt(app_pool, "anon", lambda c: c.fetch(f"select * from public.{case.table}"))
    assert isinstance(anon, asyncpg.InsufficientPrivilegeError), f"anon reads {case.table}"
    for actor in ("admin_b", "outsider"):
        rows = await attempt(
            app_pool, actor, lambda c: c.fetch(f"select * from public.{case.table}")
        )
        visible_orgs = {r["organization_id"] if "organization_id" in r else r["id"] for r in rows}
        assert ORG_A not in visible_orgs, f"{actor} sees organization A's {case.table}"


async def test_users_read_themselves_and_colleagues_and_edit_only_themselves(
    world: dict[str, asyncpg.Record], app_pool: asyncpg.Pool
) -> None:
    async def visible(actor: str) -> set[uuid.UUID]:
        rows = await attempt(app_pool, actor, lambda c: c.fetch("select id from public.users"))
        return {row["id"] for row in rows}

    assert await visible("member_a") == {OWNER_A, ADMIN_A, MEMBER_A, VIEWER_A}
    assert await visible("admin_b") == {ADMIN_B, SPARE}
    assert await visible("outsider") == {OUTSIDER}
    anon = await attempt(app_pool, "anon", lambda c: c.fetch("select id from public.users"))
    assert isinstance(anon, asyncpg.InsufficientPrivilegeError)

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
            assert await connection.fetchval("select current_user") == "anon"

        async with caller_transaction(pool, identity("member_a")) as connection:
            assert await connection.fetchval("select auth.uid()") == MEMBER_A
            assert await connection.fetchval("select count(*) from public.api_keys") == 0
    finally:
        await pool.close()


# --- The gaps of the first pass: each of these failed on migrations 0001-0005. ---


def acting(user: uuid.UUID, organization: uuid.UUID | None) -> Identity:
    return Identity(
        user_id=user, organization_id=organization, role="authenticated", via="user_token"
    )


async def as_caller(pool: asyncpg.Pool, caller: Identity, operation: Callable[[Any], Any]) -> Any:
    """Run one operation as ``caller`` and commit it; returns its result or its error."""
    try:
        async with caller_transaction(pool, caller) as connection:
            return await operation(connection)
    except asyncpg.PostgresError as exc:
        return exc


async def test_an_enrolment_by_id_grants_nothing_until_the_invited_user_accepts(
    world: dict[str, asyncpg.Record], app_pool: asyncpg.Pool
) -> None:
    admin_b, member_a_in_b = acting(ADMIN_B, ORG_B), acting(MEMBER_A, ORG_B)

    async def profile_seen_by_b() -> int:
        return await as_caller(app_pool, admin_b, lambda c: c.fetchval(
            "select count(*) from public.users where id = $1", MEMBER_A))  # fmt: skip

    async def b_teams_seen_by_member_a() -> int:
        return await as_caller(app_pool, member_a_in_b, lambda c: c.fetchval(
            "select count(*) from public.teams where organization_id = $1", ORG_B))  # fmt: skip

    # B's owner enrols organization A's member by id, as 0003 allowed.
    enrolled = await as_caller(app_pool, admin_b, lambda c: c.execute(
        "insert into public.organization_members (organization_id, user_id, role)"
        " values ($1, $2, 'member')", ORG_B, MEMBER_A))  # fmt: skip
    assert enrolled == "INSERT 0 1"  # an invitation, by default
    assert await profile_seen_by_b() == 0
    assert await b_teams_seen_by_member_a() == 0

    # Neither an active membership nor a forged acceptance can be made by the admin.
    forged = await as_caller(app_pool, admin_b, lambda c: c.execute(
        "insert into public.organization_members (organization_id, user_id, role, status)"
        " values ($1, $2, 'member', 'active')", ORG_B, VIEWER_A))  # fmt: skip
    activated = await as_caller(app_pool, admin_b, lambda c: c.execute(
        "update public.organization_members set status = 'active'"
        " where organization_id = $1 and user_id = $2", ORG_B, MEMBER_A))  # fmt: skip
    assert isinstance(forged, asyncpg.InsufficientPrivilegeError)
    assert isinstance(activated, asyncpg.InsufficientPrivilegeError)
    assert "only the invited user" in str(activated)

    # The invited user sees the invitation, cannot raise its role while accepting, accepts.
    invitations = await as_caller(app_pool, acting(MEMBER_A, ORG_A), lambda c: c.fetch(
        "select organization_id, role, status from public.organization_members"
        " where user_id = $1 order by status", MEMBER_A))  # fmt: skip
    assert [tuple(row) for row in invitations] == [
        (ORG_A, "member", "active"), (ORG_B, "member", "invited")]  # fmt: skip
    promoted = await as_caller(app_pool, member_a_in_b, lambda c: c.execute(
        "update public.organization_members set status = 'active', role = 'owner'"
        " where organization_id = $1 and user_id = $2", ORG_B, MEMBER_A))  # fmt: skip
    assert isinstance(promoted, asyncpg.InsufficientPrivilegeError)
    accepted = await as_caller(app_pool, member_a_in_b, lambda c: c.fetchrow(
        "update public.organization_members set status = 'active'"
        " where organization_id = $1 and user_id = $2 returning role, accepted_at",
        ORG_B, MEMBER_A))  # fmt: skip
    assert accepted["role"] == "member"
    assert accepted["accepted_at"] is not None
    assert await profile_seen_by_b() == 1
    assert await b_teams_seen_by_member_a() == 1


async def test_a_user_reads_and_revokes_their_sessions_and_nothing_else(
    world: dict[str, asyncpg.Record], app_pool: asyncpg.Pool
) -> None:
    member = acting(MEMBER_A, ORG_A)
    session = world["user_sessions"]["id"]

    def run(statement: str, *args: Any) -> Any:
        return as_caller(app_pool, member, lambda c: c.execute(statement, *args))

    extended = await run(
        "update public.user_sessions set expires_at = now() + interval '10 years' where id = $1",
        session,
    )
    opened = await run(
        "insert into public.user_sessions (user_id, expires_at) values ($1, now() + interval '1 day')",
        MEMBER_A,
    )
    deleted = await run("delete from public.user_sessions where id = $1", session)
    future_revocation = await run(
        "update public.user_sessions set revoked_at = now() + interval '1 year' where id = $1",
        session,
    )
    revoked = await run("update public.user_sessions set revoked_at = now() where id = $1", session)
    revived = await run("update public.user_sessions set revoked_at = null where id = $1", session)

    assert isinstance(extended, asyncpg.InsufficientPrivilegeError)
    assert isinstance(opened, asyncpg.InsufficientPrivilegeError)
    assert isinstance(deleted, asyncpg.InsufficientPrivilegeError)
    assert isinstance(future_revocation, asyncpg.InsufficientPrivilegeError)
    assert revoked == "UPDATE 1"
    assert revived == "UPDATE 0"  # a revoked session is no longer the user's to change

    service = Identity(
        user_id=None, organization_id=None, role="service_role", via="internal_token"
    )
    revived_by_service = await as_caller(app_pool, service, lambda c: c.execute(
        "update public.user_sessions set revoked_at = null where id = $1", session))  # fmt: skip
    assert isinstance(revived_by_service, asyncpg.InsufficientPrivilegeError)
    assert "cannot be revived" in str(revived_by_service)


def agent(name: str, user: uuid.UUID = MEMBER_A) -> Identity:
    return Identity(
        user_id=user, organization_id=ORG_A, role="authenticated", via="internal_token",
        actor=name)  # fmt: skip


@pytest.mark.parametrize(
    ("caller", "entry_agent", "allowed"),
    [
        (acting(VIEWER_A, ORG_A), "integrity", False),
        (acting(MEMBER_A, ORG_A), "target", False),
        # A user token that carries an act claim of its own is still a user token.
        (
            Identity(
                user_id=MEMBER_A,
                organization_id=ORG_A,
                role="authenticated",
                via="user_token",
                actor="integrity",
            ),
            "integrity",
            False,
        ),
        (agent("target"), "target", True),
        (agent("target"), "integrity", False),  # an agent cannot sign for another
        (agent("api-gateway"), "orchestrator", False),  # not an agent
        (agent("target", user=ADMIN_B), "target", False),  # B's user acting in A
        (
            Identity(user_id=None, organization_id=None, role="service_role", via="internal_token"),
            "integrity",
            True,
        ),
    ],
    ids=[
        "viewer",
        "member",
        "user-token-with-act",
        "agent",
        "agent-as-another",
        "gateway",
        "outsider-through-agent",
        "service-role",
    ],
)
async def test_only_the_agents_append_agent_audit_entries(
    caller: Identity,
    entry_agent: str,
    allowed: bool,
    world: dict[str, asyncpg.Record],
    app_pool: asyncpg.Pool,
) -> None:
    user = caller.user_id or MEMBER_A
    outcome = await as_caller(app_pool, caller, lambda c: c.execute(
        "insert into public.agent_audit_log (organization_id, agent, action, user_id, verdict)"
        " values ($1, $2, 'numbers.checked', $3, 'pass')", ORG_A, entry_agent, user))  # fmt: skip

    if allowed:
        assert outcome == "INSERT 0 1"
    else:
        assert isinstance(outcome, asyncpg.InsufficientPrivilegeError), outcome


async def test_only_owners_manage_owners_and_the_last_owner_stays(
    world: dict[str, asyncpg.Record], app_pool: asyncpg.Pool
) -> None:
    owner, admin = acting(OWNER_A, ORG_A), acting(ADMIN_A, ORG_A)

    def change(caller: Identity, statement: str, user: uuid.UUID) -> Any:
        return as_caller(app_pool, caller, lambda c: c.execute(statement, ORG_A, user))

    set_role = "update public.organization_members set role = '{}' where organization_id = $1 and user_id = $2"
    remove = "delete from public.organization_members where organization_id = $1 and user_id = $2"
    invite_owner = (
        "insert into public.organization_members (organization_id, user_id, role, invited_by)"
        " values ($1, $2, 'owner', '" + str(ADMIN_A) + "')"
    )

    # An admin cannot demote or remove an owner, promote themself, or invite an owner.
    assert await change(admin, set_role.format("member"), OWNER_A) == "UPDATE 0"
    assert await change(admin, remove, OWNER_A) == "DELETE 0"
    assert isinstance(
        await change(admin, set_role.format("owner"), ADMIN_A), asyncpg.InsufficientPrivilegeError
    )
    assert isinstance(
        await change(admin, invite_owner, OUTSIDER), asyncpg.InsufficientPrivilegeError
    )
    # An admin still manages members.
    assert await change(admin, set_role.format("viewer"), MEMBER_A) == "UPDATE 1"

    # The only owner can neither leave nor step down.
    for attempt_ in (remove, set_role.format("admin")):
        refused = await change(owner, attempt_, OWNER_A)
        assert isinstance(refused, asyncpg.CheckViolationError), refused
        assert "would have no owner" in str(refused)

    # Owners promote; with a second owner, the first may leave.
    assert await change(owner, set_role.format("owner"), ADMIN_A) == "UPDATE 1"
    assert await change(owner, remove, OWNER_A) == "DELETE 1"
    # Now the last owner is ADMIN_A, acting in A: they cannot leave either.
    refused = await change(acting(ADMIN_A, ORG_A), remove, ADMIN_A)
    assert isinstance(refused, asyncpg.CheckViolationError)


async def test_the_last_owner_goes_with_the_organization_and_not_before(
    database: Database, app_pool: asyncpg.Pool
) -> None:
    organization, only_owner = uuid.uuid4(), uuid.uuid4()
    owner = await asyncpg.connect(database.owner_dsn)
    try:
        await add_organization(owner, organization)
        await add_member(owner, organization, only_owner, "owner")
    finally:
        await owner.close()
    service = Identity(
        user_id=None, organization_id=None, role="service_role", via="internal_token"
    )

    removed_user = await as_caller(app_pool, service, lambda c: c.execute(
        "delete from public.users where id = $1", only_owner))  # fmt: skip
    closed = await as_caller(app_pool, service, lambda c: c.execute(
        "delete from public.organizations where id = $1", organization))  # fmt: skip

    assert isinstance(removed_user, asyncpg.CheckViolationError)  # the cascade is guarded too
    assert closed == "DELETE 1"  # the organization's own deletion takes its owner with it


async def test_team_and_role_grants_name_only_active_members(
    world: dict[str, asyncpg.Record], app_pool: asyncpg.Pool
) -> None:
    admin = acting(ADMIN_A, ORG_A)
    outcomes = [
        await as_caller(app_pool, admin, lambda c, statement=statement: c.execute(
            statement, ORGS["A"].team if "team" in statement else ORGS["A"].role, ORG_A, OUTSIDER))
        for statement in (
            "insert into public.team_members (team_id, organization_id, user_id) values ($1, $2, $3)",
            "insert into public.user_roles (role_id, organization_id, user_id) values ($1, $2, $3)",
        )
    ]  # fmt: skip
    assert all(isinstance(o, asyncpg.InsufficientPrivilegeError) for o in outcomes), outcomes
