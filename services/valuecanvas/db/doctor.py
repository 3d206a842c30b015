"""``valuecanvas doctor``: is this database what the platform expects?

Checks: reachable; no pending, changed or missing migrations; row-level security enabled
and forced on every table of the platform's schemas; privileges granted on purpose (anon
holds nothing that is not listed, and no API role is granted anything on future tables by
default); the three API roles present. Prints a
readable report and returns the number of problems (the command's exit status follows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from valuecanvas.core.identity import DATABASE_ROLES
from valuecanvas.db.migrate import MigrationError, inspect

PLATFORM_SCHEMAS = ("public", "platform")
REQUIRED_ROLES = DATABASE_ROLES
# What anon may hold in the platform's schemas, as (object, privilege): nothing. Signing
# in is the auth system's; every table needs a caller. A grant added on purpose is listed.
ANON_PRIVILEGES: frozenset[tuple[str, str]] = frozenset()


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def redact_dsn(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


async def run_checks(dsn: str, migrations: Path, *, connect_seconds: float = 5.0) -> list[Check]:
    try:
        connection = await asyncpg.connect(dsn, timeout=connect_seconds)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return [Check("database reachable", False, f"{type(exc).__name__}: {exc}")]
    try:
        version = await connection.fetchval("show server_version")
        checks = [Check("database reachable", True, f"PostgreSQL {version}")]
        checks.append(await _migrations(connection, migrations))
        checks.append(await _row_level_security(connection))
        checks.append(await _privileges(connection))
        checks.append(await _roles(connection))
        return checks
    finally:
        await connection.close()


async def _migrations(connection: asyncpg.Connection, migrations: Path) -> Check:
    try:
        plan = await inspect(connection, migrations)
    except MigrationError as exc:
        return Check("migrations", False, str(exc))
    problems = plan.problems + [f"{file.filename} is pending" for file in plan.pending]
    summary = (
        f"{len(plan.applied)} applied, {len(plan.pending)} pending, {len(plan.changed)} changed"
    )
    return Check("migrations", not problems, "; ".join(problems) or summary)


async def _row_level_security(connection: asyncpg.Connection) -> Check:
    rows = await connection.fetch(
        """
        select n.nspname as schema, c.relname as table, c.relrowsecurity as enabled,
               c.relforcerowsecurity as forced
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and n.nspname = any($1::text[])
        order by 1, 2
        """,
        list(PLATFORM_SCHEMAS),
    )
    if not rows:
        return Check("row-level security", False, "no tables found (is the database migrated?)")
    problems = [
        f"{row['schema']}.{row['table']} ("
        + ", ".join(
            word
            for word, flag in (
                ("not enabled", not row["enabled"]),
                ("not forced", not row["forced"]),
            )
            if flag
        )
        + ")"
        for row in rows
        if not (row["enabled"] and row["forced"])
    ]
    if problems:
        return Check("row-level security", False, "missing on " + ", ".join(problems))
    return Check("row-level security", True, f"enabled and forced on all {len(rows)} tables")


async def _privileges(connection: asyncpg.Connection) -> Check:
    # Table, column and sequence grants to anon (including through PUBLIC), from the ACLs.
    anon = await connection.fetch(
        """
        select n.nspname || '.' || c.relname as object, a.privilege_type as privilege
        from pg_class c join pg_namespace n on n.oid = c.relnamespace,
             aclexplode(c.relacl) a
        where n.nspname = any($1::text[]) and c.relkind in ('r', 'p', 'v', 'm', 'S')
          and (a.grantee = 0 or a.grantee = 'anon'::regrole)
        union
        select n.nspname || '.' || c.relname || '.' || att.attname, a.privilege_type
        from pg_attribute att join pg_class c on c.oid = att.attrelid
             join pg_namespace n on n.oid = c.relnamespace,
             aclexplode(att.attacl) a
        where n.nspname = any($1::text[]) and att.attacl is not null
          and (a.grantee = 0 or a.grantee = 'anon'::regrole)
        order by 1, 2
        """,
        list(PLATFORM_SCHEMAS),
    )
    # Default privileges that would open a future table (or sequence, function) to an API
    # role without anyone deciding it.
    defaults = await connection.fetch(
        """
        select pg_get_userbyid(d.defaclrole) as creator,
               coalesce(n.nspname, 'every schema') as schema,
               a.grantee::regrole::text as grantee, a.privilege_type as privilege
        from pg_default_acl d left join pg_namespace n on n.oid = d.defaclnamespace,
             aclexplode(d.defaclacl) a
        where (n.nspname is null or n.nspname = any($1::text[]))
          and a.grantee <> 0 and a.grantee::regrole::text = any($2::text[])
        order by 1, 2, 3, 4
        """,
        list(PLATFORM_SCHEMAS),
        list(REQUIRED_ROLES),
    )
    problems = [
        f"anon has {row['privilege']} on {row['object']}"
        for row in anon
        if (row["object"], row["privilege"]) not in ANON_PRIVILEGES
    ]
    problems += [
        f"objects {row['creator']} creates in {row['schema']} give {row['grantee']} "
        f"{row['privilege']} by default"
        for row in defaults
    ]
    if problems:
        shown = problems[:10] + ([f"and {len(problems) - 10} more"] if len(problems) > 10 else [])
        return Check("privileges", False, "; ".join(shown))
    return Check("privileges", True, "anon holds nothing unlisted; no default grants to API roles")


async def _roles(connection: asyncpg.Connection) -> Check:
    present = {
        row["rolname"]
        for row in await connection.fetch(
            "select rolname from pg_roles where rolname = any($1::text[])", list(REQUIRED_ROLES)
        )
    }
    missing = [role for role in REQUIRED_ROLES if role not in present]
    if missing:
        return Check("roles", False, "missing: " + ", ".join(missing))
    # A login role that inherits an API role acts as it before any role is set.
    inheriting = await connection.fetch(
        """
        select distinct login.rolname
        from pg_roles login
        join pg_auth_members m on m.member = login.oid
        join pg_roles api on api.oid = m.roleid
        where login.rolcanlogin and login.rolinherit and not login.rolsuper
          and api.rolname = any($1::text[])
        order by 1
        """,
        list(REQUIRED_ROLES),
    )
    if inheriting:
        names = ", ".join(row["rolname"] for row in inheriting)
        return Check(
            "roles", False, f"login role(s) {names} inherit an API role; make them NOINHERIT"
        )
    return Check("roles", True, ", ".join(REQUIRED_ROLES))


def report(dsn: str, checks: list[Check], write: Callable[[str], None] = print) -> int:
    write(f"ValueCanvas doctor: {redact_dsn(dsn)}")
    for check in checks:
        write(f"  {'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
    problems = sum(not check.ok for check in checks)
    write("doctor: all checks passed" if not problems else f"doctor: {problems} problem(s)")
    if any(check.name == "database reachable" and not check.ok for check in checks):
        write("doctor: the database does not answer: is the platform down? (make up starts it)")
    return problems
