"""Shared fixtures: a real PostgreSQL cluster (the embedded binaries) and a real Redis,
both started here, so a fresh clone needs nothing running beforehand."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.support.paths import MIGRATIONS
from tests.support.rehearsals import Rehearsals
from tests.support.servers import APP_PASSWORD, APP_ROLE, Database, RedisServer
from tests.support.waiting import wait_until
from valuecanvas.db.login_role import MEMBER_OF
from valuecanvas.db.migrate import migrate
from valuecanvas.localdev.postgres import TemporaryPostgres, ensure_service_user, free_port

TEMPLATE_DB = "migrated_template"


# Markers from the fixtures a test uses (directly or through others): `-m "not postgres"`
# and the like select by what a test needs, and cannot drift from what it really uses.
NEEDS = {
    "postgres": "postgres",
    "redis_server": "redis",
    "rehearsals": "emulator",
    "emulator": "emulator",  # test_aws_substrate's module-wide emulator
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            if fixture in NEEDS:
                item.add_marker(NEEDS[fixture])
    # The tests that wait for a background AWS rehearsal go last: the rehearsals start with
    # the session (below) and run while every other test does, instead of the session
    # standing still until the sandbox's lifecycle is over (7 of CI's minutes).
    items.sort(key=lambda item: item.get_closest_marker("rehearsal") is not None)


@pytest.fixture(scope="session", autouse=True)
def _start_the_rehearsals_when_a_test_will_wait_for_one(request: pytest.FixtureRequest) -> None:
    if any(item.get_closest_marker("rehearsal") for item in request.session.items):
        request.getfixturevalue("rehearsals")


@pytest.fixture(scope="session")
def postgres() -> Iterator[TemporaryPostgres]:
    with TemporaryPostgres() as server:
        yield server


@pytest.fixture(scope="session")
def migrated_template(postgres: TemporaryPostgres) -> str:
    """A database with every migration applied, copied for each test that needs one."""

    async def build() -> None:
        await _admin(postgres, f"create database {TEMPLATE_DB}")
        await migrate(postgres.dsn(TEMPLATE_DB), MIGRATIONS, report=lambda _: None)
        owner = await asyncpg.connect(postgres.dsn(TEMPLATE_DB))
        try:
            await owner.execute(
                f"create role {APP_ROLE} login noinherit password '{APP_PASSWORD}' nosuperuser nobypassrls"
            )
            await owner.execute(f"grant {', '.join(MEMBER_OF)} to {APP_ROLE}")
        finally:
            await owner.close()

    asyncio.run(build())
    return TEMPLATE_DB


async def _admin(postgres: TemporaryPostgres, statement: str) -> None:
    connection = await asyncpg.connect(postgres.dsn())
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
async def database(postgres: TemporaryPostgres, migrated_template: str) -> AsyncIterator[Database]:
    """A fresh, fully migrated database for one test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    await _admin(postgres, f"create database {name} template {migrated_template}")
    yield Database(
        name=name,
        owner_dsn=postgres.dsn(name),
        app_dsn=postgres.dsn(name, user=APP_ROLE, password=APP_PASSWORD),
    )
    await _admin(postgres, f"drop database if exists {name} with (force)")


@pytest.fixture
async def empty_database(postgres: TemporaryPostgres) -> AsyncIterator[str]:
    """A database with nothing applied; yields its DSN."""
    name = f"empty_{uuid.uuid4().hex[:12]}"
    await _admin(postgres, f"create database {name}")
    yield postgres.dsn(name)
    await _admin(postgres, f"drop database if exists {name} with (force)")


def redis_binary() -> str:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        pytest.fail("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    return binary


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private Redis for one test (stoppable without disturbing others)."""
    port = free_port()
    directory = tempfile.mkdtemp(prefix="valuecanvas-redis-")
    user = ensure_service_user()
    if user:
        shutil.chown(directory, user)
    # Started as the user directly (not through runuser, which on SIGTERM waits 2 s before
    # killing its child: that was 2 s of every test's teardown).
    process = subprocess.Popen(
        [
            redis_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            directory,
        ],
        stdout=subprocess.DEVNULL,
        user=user,
    )
    wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=0.2).close() or True,
               what=f"redis-server on port {port}", timeout=10, interval=0.05, ignore=(OSError,))  # fmt: skip
    server = RedisServer(port, process)
    yield server
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def rehearsals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsals]:
    """The AWS rehearsals (sandbox lifecycle, AWS roles' molecule scenarios), all started in
    the background, two at a time: with the session when a selected test is marked
    `rehearsal` (it waits for one), so that they overlap the rest of the run."""
    started = Rehearsals(tmp_path_factory.mktemp("rehearsals"))
    yield started
    started.close()
