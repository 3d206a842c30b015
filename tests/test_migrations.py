"""The migration runner against a real Postgres: apply, rerun, refuse edits, serialize."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.support.paths import MIGRATIONS
from valuecanvas.db.doctor import run_checks
from valuecanvas.db.migrate import MigrationError, discover, migrate

SPEC_TABLES = {
    "users", "organizations", "teams", "roles", "user_roles", "organization_members",
    "team_members", "user_sessions", "audit_logs", "integrations", "api_keys", "webhooks",
    "notification_preferences", "billing_invoices", "policy_enforcement", "agent_audit_log",
    "workflow_definitions", "workflow_executions",
}  # fmt: skip
# Tables the platform adds for its own needs, under the same rules.
PLATFORM_TABLES = {
    "llm_usage", "value_cases", "kpi_measurements", "products", "webhook_deliveries", "value_drivers",
}  # fmt: skip
EXPECTED_TABLES = SPEC_TABLES | PLATFORM_TABLES


def quiet(_: str) -> None:
    pass


async def recorded(dsn: str) -> dict[str, str]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("select filename, sha256 from platform.schema_migrations")
        return {row["filename"]: row["sha256"] for row in rows}
    finally:
        await connection.close()


async def public_tables(dsn: str) -> set[str]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("select tablename from pg_tables where schemaname = 'public'")
        return {row["tablename"] for row in rows}
    finally:
        await connection.close()


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, target)
    return target


async def test_applies_every_file_on_an_empty_database(empty_database: str) -> None:
    result = await migrate(empty_database, MIGRATIONS, report=quiet)

    files = [file.filename for file in discover(MIGRATIONS)]
    assert result.applied == files
    assert await public_tables(empty_database) == EXPECTED_TABLES
    assert set(await recorded(empty_database)) == set(files)


async def test_rerun_is_a_no_op(empty_database: str) -> None:
    await migrate(empty_database, MIGRATIONS, report=quiet)
    before = await recorded(empty_database)
    lines: list[str] = []

    result = await migrate(empty_database, MIGRATIONS, report=lines.append)

    assert result.applied == []
    assert result.already_applied == len(before)
    assert await recorded(empty_database) == before
    assert lines == [f"migrations: 0 applied, {len(before)} already applied"]


async def test_an_edited_applied_file_is_refused_by_name_and_nothing_is_applied(
    empty_database: str, migrations_copy: Path
) -> None:
    await migrate(empty_database, migrations_copy, report=quiet)
    edited = migrations_copy / "0002_schema.sql"
    edited.write_text(edited.read_text() + "\n-- an innocent-looking edit\n")
    (migrations_copy / "0999_new_table.sql").write_text("create table public.newcomer (id int);")

    with pytest.raises(MigrationError, match=r"0002_schema\.sql was applied but has changed"):
        await migrate(empty_database, migrations_copy, report=quiet)

    assert "newcomer" not in await public_tables(empty_database)
    assert "0999_new_table.sql" not in await recorded(empty_database)


async def test_a_removed_applied_file_is_refused(
    empty_database: str, migrations_copy: Path
) -> None:
    (migrations_copy / "0999_extra.sql").write_text("create table public.extra (id int);")
    await migrate(empty_database, migrations_copy, report=quiet)
    (migrations_copy / "0999_extra.sql").unlink()

    with pytest.raises(MigrationError, match=r"0999_extra\.sql was applied but is no longer"):
        await migrate(empty_database, migrations_copy, report=quiet)


async def test_a_failing_file_is_rolled_back_and_not_recorded(
    empty_database: str, migrations_copy: Path
) -> None:
    (migrations_copy / "0998_half_done.sql").write_text(
        "create table public.half_done (id int);\nselect no_such_function();\n"
    )

    with pytest.raises(MigrationError, match=r"0998_half_done\.sql failed and was rolled back"):
        await migrate(empty_database, migrations_copy, report=quiet)

    assert "half_done" not in await public_tables(empty_database)
    assert "0998_half_done.sql" not in await recorded(empty_database)
    assert "0003_row_level_security.sql" in await recorded(empty_database)


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        ("4_short.sql", "named NNNN_lowercase_words.sql"),
        ("0004_Upper.sql", "named NNNN_lowercase_words.sql"),
        ("0001_again.sql", "number 0001 is also used"),
    ],
)
def test_badly_named_files_are_refused(migrations_copy: Path, filename: str, message: str) -> None:
    (migrations_copy / filename).write_text("select 1;")

    with pytest.raises(MigrationError, match=message):
        discover(migrations_copy)


async def test_concurrent_runners_apply_each_file_once(
    empty_database: str, migrations_copy: Path
) -> None:
    # A slow file widens the window in which a second runner could slip in.
    (migrations_copy / "0900_slow.sql").write_text(
        "select pg_sleep(1);\ncreate table public.applied_once (id int);\n"
    )
    lines: list[str] = []

    results = await asyncio.gather(
        migrate(empty_database, migrations_copy, report=lines.append),
        migrate(empty_database, migrations_copy, report=lines.append),
    )

    applied = sorted(name for result in results for name in result.applied)
    assert applied == sorted(file.filename for file in discover(migrations_copy))
    assert sorted(len(result.applied) for result in results)[0] == 0
    assert "applied_once" in await public_tables(empty_database)


async def test_doctor_passes_on_a_migrated_database(empty_database: str) -> None:
    await migrate(empty_database, MIGRATIONS, report=quiet)

    checks = await run_checks(empty_database, MIGRATIONS)

    assert [(check.name, check.ok) for check in checks] == [
        ("database reachable", True),
        ("migrations", True),
        ("row-level security", True),
        ("privileges", True),
        ("roles", True),
    ]


async def test_doctor_names_a_table_without_forced_rls_and_a_pending_migration(
    empty_database: str, migrations_copy: Path
) -> None:
    await migrate(empty_database, migrations_copy, report=quiet)
    connection = await asyncpg.connect(empty_database)
    try:
        await connection.execute("alter table public.webhooks no force row level security")
    finally:
        await connection.close()
    (migrations_copy / "0999_later.sql").write_text("select 1;")

    checks = {check.name: check for check in await run_checks(empty_database, migrations_copy)}

    assert not checks["row-level security"].ok
    assert "public.webhooks (not forced)" in checks["row-level security"].detail
    assert not checks["migrations"].ok
    assert "0999_later.sql is pending" in checks["migrations"].detail


async def test_a_table_added_later_is_closed_to_the_api_roles_and_named_by_doctor(
    empty_database: str,
) -> None:
    """Failed on 0003's grants: anon read every table, and default privileges gave
    authenticated insert, update and delete on any future one."""
    await migrate(empty_database, MIGRATIONS, report=quiet)
    connection = await asyncpg.connect(empty_database)
    try:
        anon = await connection.fetch(
            """
            select table_name, privilege_type from information_schema.role_table_grants
            where grantee = 'anon' and table_schema = 'public'
            union all
            select table_name, privilege_type from information_schema.column_privileges
            where grantee = 'anon' and table_schema = 'public'
            """
        )
        await connection.execute("create table public.forgotten (id int)")
        opened = await connection.fetchval(
            "select array_agg(r || ':' || p) filter (where has_table_privilege(r, 'public.forgotten', p))"
            " from unnest(array['anon', 'authenticated', 'service_role']) r,"
            " unnest(array['select', 'insert', 'update', 'delete']) p"
        )
        await connection.execute("grant select on public.teams to anon")
        checks = {check.name: check for check in await run_checks(empty_database, MIGRATIONS)}
    finally:
        await connection.close()

    assert [tuple(row) for row in anon] == []
    assert opened is None
    assert "public.forgotten (not enabled, not forced)" in checks["row-level security"].detail
    assert checks["privileges"].detail == "anon has SELECT on public.teams"


async def test_doctor_names_default_privileges_that_open_future_tables(empty_database: str) -> None:
    await migrate(empty_database, MIGRATIONS, report=quiet)
    connection = await asyncpg.connect(empty_database)
    try:
        await connection.execute(
            "alter default privileges in schema public grant insert on tables to authenticated"
        )
        checks = {check.name: check for check in await run_checks(empty_database, MIGRATIONS)}
    finally:
        await connection.close()

    assert not checks["privileges"].ok
    assert "give authenticated INSERT by default" in checks["privileges"].detail


async def test_doctor_flags_a_login_role_that_inherits_service_role(empty_database: str) -> None:
    await migrate(empty_database, MIGRATIONS, report=quiet)
    connection = await asyncpg.connect(empty_database)
    role = f"careless_{uuid.uuid4().hex[:8]}"
    try:
        await connection.execute(f"create role {role} login inherit")
        await connection.execute(f"grant service_role to {role}")
        checks = {check.name: check for check in await run_checks(empty_database, MIGRATIONS)}
    finally:
        await connection.execute(f"drop role {role}")
        await connection.close()

    assert not checks["roles"].ok
    assert role in checks["roles"].detail


async def test_doctor_reports_an_unreachable_database() -> None:
    checks = await run_checks("postgresql://nobody@127.0.0.1:1/none", MIGRATIONS, connect_seconds=2)

    assert [(check.name, check.ok) for check in checks] == [("database reachable", False)]
