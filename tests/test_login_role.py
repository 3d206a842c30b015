"""The services' login role, made by ``valuecanvas migrate --login-role`` (the PreSync Job on
RDS and Supabase), against a real Postgres that checks passwords (SCRAM), as RDS does.

- Created with LOGIN and NOINHERIT and nothing else, a member of the API roles and of
  orchestrator; the doctor passes; the services' login works.
- A second run sets the secret's current password: after a rotation, the old one fails.
- A migrating role that is not a superuser (RDS's master user) makes and updates it, and
  a statement log shows a SCRAM verifier, never the password.
- Refused by name: the migrating role itself, a role that is a superuser, no password; a
  role that may create databases or roles loses that.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.support.paths import MIGRATIONS
from tests.support.rows import fetch
from valuecanvas import cli
from valuecanvas.db.doctor import run_checks
from valuecanvas.db.login_role import MEMBER_OF, LoginRoleError, ensure_login_role
from valuecanvas.db.migrate import migrate
from valuecanvas.localdev.postgres import TemporaryPostgres


@pytest.fixture(scope="module")
def scram() -> Iterator[TemporaryPostgres]:
    """A migrated cluster that asks every user but the superuser for a SCRAM password."""
    with TemporaryPostgres() as server:
        hba = server.data_dir / "pg_hba.conf"
        hba.write_text(
            "local all all trust\n"
            "host all postgres 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )
        asyncio.run(_execute(server.dsn(), "select pg_reload_conf()"))
        asyncio.run(migrate(server.dsn(), MIGRATIONS, report=lambda _: None))
        yield server


async def _execute(dsn: str, *statements: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def _can_log_in(server: TemporaryPostgres, user: str, password: str) -> bool:
    try:
        asyncio.run(_execute(server.dsn(user=user, password=password), "select 1"))
    except asyncpg.InvalidPasswordError:
        return False
    return True


def _role(server: TemporaryPostgres, name: str) -> dict[str, object]:
    rows = asyncio.run(fetch(server.dsn(),
        """select r.rolcanlogin, r.rolinherit, r.rolsuper, r.rolcreatedb, r.rolcreaterole,
                  r.rolreplication, r.rolbypassrls,
                  array(select g.rolname from pg_auth_members m join pg_roles g on g.oid = m.roleid
                         where m.member = r.oid order by 1) as member_of
             from pg_roles r where r.rolname = $1""", name))  # fmt: skip
    return dict(rows[0])


def _migrate_cli(monkeypatch: pytest.MonkeyPatch, owner: str, login: str | None) -> int:
    monkeypatch.setenv("MIGRATION_DATABASE_URL", owner)
    if login is None:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    else:
        monkeypatch.setenv("DATABASE_URL", login)
    return cli.main(["migrate", "--login-role", "--dir", str(MIGRATIONS)])


def test_migrate_makes_the_services_login_role_and_follows_its_rotated_password(
    scram: TemporaryPostgres, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"app_{uuid.uuid4().hex[:8]}"
    first, rotated = "first-password-0123456789", "rotated-password-9876543210"

    assert _migrate_cli(monkeypatch, scram.dsn(), scram.dsn(user=name, password=first)) == 0
    assert f"login role {name}: created" in capsys.readouterr().out
    assert _role(scram, name) == {
        "rolcanlogin": True, "rolinherit": False, "rolsuper": False, "rolcreatedb": False,
        "rolcreaterole": False, "rolreplication": False, "rolbypassrls": False,
        "member_of": sorted(MEMBER_OF),
    }  # fmt: skip
    assert _can_log_in(scram, name, first)
    checks = {check.name: check for check in asyncio.run(run_checks(scram.dsn(), MIGRATIONS))}
    assert checks["roles"].ok, checks["roles"].detail

    # The secret rotated: the next sync's Job sets the new password; the old one is refused.
    assert _migrate_cli(monkeypatch, scram.dsn(), scram.dsn(user=name, password=rotated)) == 0
    out = capsys.readouterr().out
    assert f"login role {name}: checked, password set" in out
    assert first not in out
    assert rotated not in out
    assert _can_log_in(scram, name, rotated)
    assert not _can_log_in(scram, name, first)

    # Acting as an API role through it: what the services do in every transaction.
    rows = asyncio.run(fetch(scram.dsn(user=name, password=rotated),
                              "select set_config('role', 'authenticated', false) as role"))  # fmt: skip
    assert rows[0]["role"] == "authenticated"


def test_a_migrating_role_without_superuser_makes_it_and_logs_no_password(
    scram: TemporaryPostgres,
) -> None:
    # RDS's master user: CREATEROLE, not a superuser, holding the API roles it created.
    master, master_password = f"master_{uuid.uuid4().hex[:8]}", "master-password-abcdef"
    asyncio.run(_execute(scram.dsn(),
        f"create role {master} login createrole password '{master_password}'",
        f"grant {', '.join(MEMBER_OF)} to {master} with admin option",
        f"grant all on database postgres to {master}",
        f"alter role {master} set log_statement = 'all'"))  # fmt: skip
    owner = scram.dsn(user=master, password=master_password)
    name = f"app_{uuid.uuid4().hex[:8]}"
    first, rotated = "first-secret-value-42424242", "second-secret-value-13131313"
    log = Path(scram.root) / "postgres.log"
    logged_before = log.stat().st_size

    made = ensure_login_role(owner, scram.dsn(user=name, password=first))
    again = ensure_login_role(owner, scram.dsn(user=name, password=rotated))

    assert (made.created, again.created) == (True, False)
    assert _role(scram, name)["member_of"] == sorted(MEMBER_OF)
    assert _can_log_in(scram, name, rotated)
    assert not _can_log_in(scram, name, first)
    logged = log.read_text(errors="replace")[logged_before:]
    assert f'create role "{name}"' in logged
    assert f'alter role "{name}"' in logged
    assert "SCRAM-SHA-256$" in logged
    assert first not in logged
    assert rotated not in logged


def test_what_cannot_be_the_login_role_is_refused_by_name(
    scram: TemporaryPostgres, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(LoginRoleError, match="logs in as postgres, the role that migrates"):
        ensure_login_role(scram.dsn(), scram.dsn(password="whatever-it-is"))

    powerful = f"powerful_{uuid.uuid4().hex[:8]}"
    asyncio.run(_execute(scram.dsn(), f"create role {powerful} login superuser bypassrls"))
    with pytest.raises(LoginRoleError, match=f"role {powerful} has superuser, bypassrls"):
        ensure_login_role(scram.dsn(), scram.dsn(user=powerful, password="a-password-123"))
    assert _role(scram, powerful)["rolsuper"] is True  # left as it was

    # CREATEDB and CREATEROLE it loses; no refusal needed.
    lax = f"lax_{uuid.uuid4().hex[:8]}"
    asyncio.run(_execute(scram.dsn(), f"create role {lax} login inherit createdb createrole"))
    ensure_login_role(scram.dsn(), scram.dsn(user=lax, password="a-password-456"))
    assert {key: _role(scram, lax)[key] for key in ("rolinherit", "rolcreatedb", "rolcreaterole")} == {
        "rolinherit": False, "rolcreatedb": False, "rolcreaterole": False
    }  # fmt: skip

    with pytest.raises(LoginRoleError, match="must name the services' user and its password"):
        ensure_login_role(scram.dsn(), scram.dsn(user="no_password_here"))

    assert _migrate_cli(monkeypatch, scram.dsn(), None) == 2
    assert "--login-role needs MIGRATION_DATABASE_URL" in capsys.readouterr().err
