"""The services' login role, made by the migration runner: ``valuecanvas migrate
--login-role`` (the PreSync Job does this on RDS and Supabase; the local platform makes
its own with Ansible).

The migration role (``MIGRATION_DATABASE_URL``: RDS's master user) owns the schema; the
services log in as ``DATABASE_URL``'s user, which owns nothing. On every run, that role:

- exists, with LOGIN and NOINHERIT, and no CREATEDB or CREATEROLE (created if missing;
  an existing role loses them);
- has ``DATABASE_URL``'s password, so a rotated secret takes effect at the next sync;
- is a member of the API roles and of ``orchestrator``, so that it may ``set role``.

It must not be a superuser, or replicate, or bypass RLS: it is created without, and a role
found with any of them is refused by name (only a superuser could take them away).

The password reaches the server only as a SCRAM-SHA-256 verifier, computed by libpq
(psycopg's ``encrypt_password``): a statement log never holds it in clear.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from valuecanvas.core.identity import DATABASE_ROLES

# The roles the services' login role may set: the API roles, and the engine's (0011).
MEMBER_OF: tuple[str, ...] = (*DATABASE_ROLES, "orchestrator")


class LoginRoleError(Exception):
    """The login role cannot be made as asked; nothing was changed."""


@dataclass(frozen=True)
class LoginRole:
    name: str
    created: bool


def ensure_login_role(owner_dsn: str, login_dsn: str) -> LoginRole:
    login = conninfo_to_dict(login_dsn)
    name, password = str(login.get("user") or ""), str(login.get("password") or "")
    if not name or not password:
        raise LoginRoleError("DATABASE_URL must name the services' user and its password")
    with psycopg.connect(owner_dsn, connect_timeout=10) as connection:
        if name == connection.info.user:
            raise LoginRoleError(
                f"DATABASE_URL logs in as {name}, the role that migrates: the services "
                "need a login role of their own"
            )
        found = (
            connection.cursor(row_factory=dict_row)
            .execute(
                """select rolsuper as superuser, rolreplication as replication,
                          rolbypassrls as bypassrls, rolcreatedb as createdb,
                          rolcreaterole as createrole
                     from pg_roles where rolname = %s""",
                [name],
            )
            .fetchone()
        )
        powers = [
            power for power in ("superuser", "replication", "bypassrls") if found and found[power]
        ]
        if powers:
            raise LoginRoleError(
                f"role {name} has {', '.join(powers)}; the services' login role must not "
                "(a superuser must remove it: alter role ... with nosuperuser ...)"
            )
        verifier = connection.pgconn.encrypt_password(
            password.encode(), name.encode(), b"scram-sha-256"
        ).decode()
        options: list[sql.Composable] = [
            sql.SQL("login noinherit password {}").format(sql.Literal(verifier))
        ]
        if found is None:
            statement = sql.SQL("create role {} with nosuperuser noreplication nobypassrls "
                                "nocreatedb nocreaterole {}")  # fmt: skip
        else:
            # Only what must change: an attribute named in ALTER ROLE needs the migrating
            # role to hold it (Postgres 16), and RDS's master user is no superuser.
            statement = sql.SQL("alter role {} with {}")
            options += [
                sql.SQL(f"no{power}") for power in ("createdb", "createrole") if found[power]
            ]
        connection.execute(statement.format(sql.Identifier(name), sql.SQL(" ").join(options)))
        connection.execute(
            sql.SQL("grant {} to {}").format(
                sql.SQL(", ").join(map(sql.Identifier, MEMBER_OF)), sql.Identifier(name)
            )
        )
    return LoginRole(name, created=found is None)
