"""Benchmark: row-level security's cost on each growing table's common access paths. A
script, not a test (`make bench-rls`; the plan tests in tests/test_rls_plans.py reuse its
seeding).

For each size (100k and 1M rows per table by default, over 100 organizations) it seeds a
scratch database on the embedded Postgres, then times, per table, the latest page (50
rows), the look-up by id and the organization's count, three ways:

- superuser: the migration role (no RLS), with an explicit `organization_id = $1`;
- filter + RLS: a caller (an admin of the organization, also a member of another) through
  the services' path, `caller_transaction`, with the same explicit filter;
- RLS alone: the same caller without the filter, as Supabase-style clients query.

Only the statement is timed (a round trip from the client, median of --repeat), inside a
transaction set up the same way each time. The set-up itself (BEGIN, then role and
claims) is timed separately. `--forms` also compares policy forms on agent_audit_log:
0003's `in (select ...)`, `= any (array(...))`, and the acting organization (0006's).

    python -m tests.benchmarks.rls [--rows 100000 1000000] [--organizations 100] [--repeat 300]

Everything runs on 127.0.0.1 in a temporary cluster that is removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from valuecanvas.core.db import caller_transaction
from valuecanvas.core.identity import Identity
from valuecanvas.db.migrate import migrate
from valuecanvas.localdev.postgres import TemporaryPostgres

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
APP_ROLE, APP_PASSWORD = "bench_app", "bench-app-password"


@dataclass(frozen=True)
class Table:
    name: str
    seed: str  # $1 organizations (uuid[]), $2 users (uuid[]), $3 rows; row i in org i % M
    latest_index: str  # the index the latest page must use
    id_indexes: tuple[str, ...]  # an index the look-up by id must use (led by the id)
    order: str = "created_at"
    id_column: str = "id"


# The tables that grow with use. Row i belongs to organization i % M and to that
# organization's user; created_at descends with i.
TABLES = [
    Table(
        "agent_audit_log",
        """insert into public.agent_audit_log (organization_id, agent, action, user_id, created_at)
           select ($1::uuid[])[1 + i % cardinality($1::uuid[])], 'target', 'case.built',
                  ($2::uuid[])[1 + i % cardinality($2::uuid[])], now() - i * interval '1 second'
           from generate_series(1, $3::int) i""",
        "agent_audit_log_organization_created_idx",
        ("agent_audit_log_pkey",),
    ),
    Table(
        "audit_logs",
        """insert into public.audit_logs (organization_id, actor_user_id, action, created_at)
           select ($1::uuid[])[1 + i % cardinality($1::uuid[])],
                  ($2::uuid[])[1 + i % cardinality($2::uuid[])], 'case.viewed',
                  now() - i * interval '1 second'
           from generate_series(1, $3::int) i""",
        "audit_logs_organization_created_idx",
        ("audit_logs_pkey", "audit_logs_organization_id_idx"),
    ),
    Table(
        "workflow_executions",
        """insert into public.workflow_executions
             (organization_id, workflow_definition_id, started_by, status, created_at)
           select o.id, d.id, ($2::uuid[])[1 + i % cardinality($2::uuid[])], 'pending',
                  now() - i * interval '1 second'
           from generate_series(1, $3::int) i,
                lateral (select ($1::uuid[])[1 + i % cardinality($1::uuid[])] as id) o,
                lateral (select id from public.workflow_definitions
                         where organization_id = o.id limit 1) d""",
        "workflow_executions_organization_created_idx",
        ("workflow_executions_pkey", "workflow_executions_id_organization_id_key"),
    ),
    Table(
        "llm_usage",
        """insert into public.llm_usage
             (completion_id, request_id, user_id, organization_id, logical_model, provider,
              provider_model, attempts, prompt_tokens, completion_tokens, cost_usd,
              latency_ms, status, created_at)
           select gen_random_uuid(), 'bench-' || i, ($2::uuid[])[1 + i % cardinality($2::uuid[])],
                  ($1::uuid[])[1 + i % cardinality($1::uuid[])], 'chat', 'offline', 'offline',
                  1, 10, 10, 0, 5, 'succeeded', now() - i * interval '1 second'
           from generate_series(1, $3::int) i""",
        "llm_usage_organization_created_idx",
        ("llm_usage_pkey",),
        id_column="completion_id",
    ),
]


@dataclass(frozen=True)
class Seeded:
    organization: uuid.UUID  # the one the caller acts in (they administer it)
    other: uuid.UUID  # another they are a member of
    caller: Identity
    ids: dict[str, Any]  # per table: the id of the organization's latest row


async def seed(owner: asyncpg.Connection, rows: int, organizations: int) -> Seeded:
    """``rows`` rows in each of TABLES over ``organizations`` organizations, each with its
    own user; the caller administers the first organization and is a member of the second."""
    orgs = [uuid.uuid4() for _ in range(organizations)]
    users = [uuid.uuid4() for _ in range(organizations)]
    await owner.executemany(
        "insert into public.organizations (id, name, slug) values ($1, $2, $3)",
        [(o, f"Org {n}", f"org-{o.hex[:12]}") for n, o in enumerate(orgs)],
    )
    await owner.executemany(
        "insert into public.users (id, email) values ($1, $2)",
        [(u, f"{u.hex[:12]}@example.test") for u in users],
    )
    memberships = [(o, u, "owner") for o, u in zip(orgs, users, strict=True)]
    memberships.append((orgs[1], users[0], "member"))
    memberships[0] = (orgs[0], users[0], "admin")
    memberships.append((orgs[0], users[1], "owner"))
    await owner.executemany(
        "insert into public.organization_members (organization_id, user_id, role, status)"
        " values ($1, $2, $3, 'active')",
        memberships,
    )
    await owner.executemany(
        "insert into public.workflow_definitions (organization_id, name, definition)"
        " values ($1, 'value-case', '{}')",
        [(o,) for o in orgs],
    )
    for table in TABLES:
        await owner.execute(table.seed, orgs, users, rows)
    await owner.execute("analyze")
    ids = {}
    for table in TABLES:
        ids[table.name] = await owner.fetchval(
            f"select {table.id_column} from public.{table.name} where organization_id = $1"
            f" order by {table.order} desc limit 1",
            orgs[0],
        )
    caller = Identity(
        user_id=users[0], organization_id=orgs[0], role="authenticated", via="user_token"
    )
    return Seeded(orgs[0], orgs[1], caller, ids)


def queries(table: Table, seeded: Seeded) -> dict[str, tuple[str, str, list[Any]]]:
    """Per access path: (filtered statement, RLS-only statement, the filtered one's args)."""
    column = table.id_column
    org, row_id = seeded.organization, seeded.ids[table.name]
    t = f"public.{table.name}"
    return {
        "latest page": (
            f"select * from {t} where organization_id = $1 order by {table.order} desc limit 50",
            f"select * from {t} order by {table.order} desc limit 50",
            [org],
        ),
        "by id": (
            f"select * from {t} where organization_id = $1 and {column} = $2",
            f"select * from {t} where {column} = '{row_id}'",
            [org, row_id],
        ),
        "count": (
            f"select count(*) from {t} where organization_id = $1",
            f"select count(*) from {t}",
            [org],
        ),
    }


async def medians_ms(
    ways: list[tuple[Callable[[], Any], str, list[Any]]], repeat: int
) -> list[tuple[float, Any]]:
    """Per way (transaction factory, statement, args): the median time of the statement
    inside a fresh transaction, and its rows. The ways take turns, so that drift on the
    machine (caches, other processes) falls on all of them alike."""
    samples: list[list[float]] = [[] for _ in ways]
    results: list[Any] = [None for _ in ways]
    for _ in range(repeat):
        for n, (transactions, statement, args) in enumerate(ways):
            async with transactions() as connection:
                started = time.perf_counter()
                rows = await connection.fetch(statement, *args)
                samples[n].append((time.perf_counter() - started) * 1000)
            results[n] = [tuple(r) for r in rows]
    return [(statistics.median(s), r) for s, r in zip(samples, results, strict=True)]


async def measure(owner_pool: asyncpg.Pool, app_pool: asyncpg.Pool, seeded: Seeded,
                  repeat: int) -> list[dict[str, Any]]:  # fmt: skip
    def superuser() -> Any:
        return _plain_transaction(owner_pool)

    def caller() -> Any:
        return caller_transaction(app_pool, seeded.caller)

    results = []
    for table in TABLES:
        for path, (filtered, alone, args) in queries(table, seeded).items():
            (su, su_rows), (fr, fr_rows), (ra, ra_rows) = await medians_ms(
                [(superuser, filtered, args), (caller, filtered, args), (caller, alone, [])],
                repeat,
            )
            if not (su_rows == fr_rows == ra_rows):
                raise SystemExit(f"{table.name} {path}: the three ways disagree on the rows")
            results.append({"table": table.name, "path": path, "superuser": su,
                            "filter": fr, "alone": ra})  # fmt: skip
    return results


@asynccontextmanager
async def _plain_transaction(pool: asyncpg.Pool) -> AsyncIterator[Any]:
    """A transaction on a pooled connection with no role or claims set (the superuser's)."""
    async with pool.acquire() as connection, connection.transaction():
        yield connection


async def setup_cost(owner_pool: asyncpg.Pool, app_pool: asyncpg.Pool, seeded: Seeded,
                     repeat: int) -> dict[str, float]:  # fmt: skip
    async def timed(enter: Callable[[], Any]) -> float:
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            async with enter():
                samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)

    return {
        "BEGIN only": await timed(lambda: _plain_transaction(owner_pool)),
        "BEGIN, then role and claims (caller_transaction)": await timed(
            lambda: caller_transaction(app_pool, seeded.caller)
        ),
    }


FORMS = {
    "0003: in (select member_organization_ids())":
        "organization_id in (select private.member_organization_ids())",
    "= any (array(select member_organization_ids()))":
        "organization_id = any (array(select private.member_organization_ids()))",
    "0006: = (select acting_organization_id())":
        "organization_id = (select private.acting_organization_id())",
}  # fmt: skip


async def forms(owner_pool: asyncpg.Pool, app_pool: asyncpg.Pool, seeded: Seeded,
                repeat: int) -> list[dict[str, Any]]:  # fmt: skip
    table = TABLES[0]
    out = []
    for label, using in FORMS.items():
        async with owner_pool.acquire() as owner:
            await owner.execute(
                "drop policy agent_audit_log_select_members on public.agent_audit_log;"
                " create policy agent_audit_log_select_members on public.agent_audit_log"
                f" for select to authenticated using ({using})"
            )
        row: dict[str, str | float] = {"form": label}

        def caller() -> Any:
            return caller_transaction(app_pool, seeded.caller)

        for path, (filtered, alone, args) in queries(table, seeded).items():
            if path == "by id":
                continue
            (row[f"{path}: filter"], _), (row[f"{path}: alone"], _) = await medians_ms(
                [(caller, filtered, args), (caller, alone, [])], repeat
            )
        out.append(row)
    return out


async def run_size(server: TemporaryPostgres, rows: int, organizations: int, repeat: int,
                   with_forms: bool, say: Callable[[str], None]) -> None:  # fmt: skip
    name = f"bench_rls_{rows}"
    admin = await asyncpg.connect(server.dsn())
    await admin.execute(f"drop database if exists {name} with (force)")
    await admin.execute(f"create database {name}")
    await admin.close()
    await migrate(server.dsn(name), MIGRATIONS, report=lambda _: None)
    owner = await asyncpg.connect(server.dsn(name))
    exists = await owner.fetchval("select 1 from pg_roles where rolname = $1", APP_ROLE)
    if not exists:
        await owner.execute(
            f"create role {APP_ROLE} login noinherit password '{APP_PASSWORD}' nosuperuser nobypassrls"
        )
    await owner.execute(f"grant anon, authenticated, service_role to {APP_ROLE}")
    started = time.perf_counter()
    seeded = await seed(owner, rows, organizations)
    await owner.close()
    say(f"\n### {rows:,} rows per table, {organizations} organizations "
        f"(seeded in {time.perf_counter() - started:.0f} s), median of {repeat}\n")  # fmt: skip
    owner_pool = await asyncpg.create_pool(server.dsn(name), min_size=1, max_size=1)
    app_pool = await asyncpg.create_pool(
        server.dsn(name, user=APP_ROLE, password=APP_PASSWORD), min_size=1, max_size=1
    )
    try:
        say("| table | path | superuser + filter | caller: filter + RLS | caller: RLS alone "
            "| filter+RLS / superuser | alone / filter+RLS |")  # fmt: skip
        say("|---|---|---|---|---|---|---|")
        for r in await measure(owner_pool, app_pool, seeded, repeat):
            say(f"| {r['table']} | {r['path']} | {r['superuser']:.3f} ms | {r['filter']:.3f} ms "
                f"| {r['alone']:.3f} ms | {r['filter'] / r['superuser']:.2f}x "
                f"| {r['alone'] / r['filter']:.2f}x |")  # fmt: skip
        say("\nTransaction set-up (median, ms):\n")
        for label, value in (await setup_cost(owner_pool, app_pool, seeded, repeat)).items():
            say(f"- {label}: {value:.3f} ms")
        if with_forms:
            say("\nPolicy forms on agent_audit_log (caller, median, ms):\n")
            rows_ = await forms(owner_pool, app_pool, seeded, repeat)
            keys = [k for k in rows_[0] if k != "form"]
            say("| form | " + " | ".join(keys) + " |")
            say("|---|" + "---|" * len(keys))
            for r in rows_:
                say(f"| {r['form']} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |")
    finally:
        await owner_pool.close()
        await app_pool.close()
    admin = await asyncpg.connect(server.dsn())
    await admin.execute(f"drop database {name} with (force)")
    await admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--organizations", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--forms", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    print(f"machine: {platform.node()}, {platform.machine()}, Python {platform.python_version()},"
          f" {__import__('os').cpu_count()} cores")  # fmt: skip
    with TemporaryPostgres() as server:

        async def all_sizes() -> None:
            version = await _version(server)
            print(f"PostgreSQL {version} (embedded, pgserver), loopback TCP, asyncpg")
            for rows in args.rows:
                await run_size(server, rows, args.organizations, args.repeat, args.forms, print)

        asyncio.run(all_sizes())
    return 0


async def _version(server: TemporaryPostgres) -> str:
    connection = await asyncpg.connect(server.dsn())
    try:
        return str(await connection.fetchval("show server_version"))
    finally:
        await connection.close()


if __name__ == "__main__":
    raise SystemExit(main())
