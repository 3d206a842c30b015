"""`ansible-playbook site.yml` with the local inventory, for real: embedded Postgres, Redis
and the eight services under supervisord, in a private state directory and on shifted
ports so it can run beside a developer's own platform."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import REPO
from valuecanvas.apps import SERVICES
from valuecanvas.localdev.postgres import free_port

pytestmark = pytest.mark.platform
BIN = Path(sys.executable).parent


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def free_offset() -> int:
    for offset in range(20000, 40000, 1000):
        if all(port_is_free(spec.port + offset) for spec in SERVICES.values()):
            return offset
    raise RuntimeError("no free block of ports for the services")


@dataclass
class Platform:
    state_dir: Path
    offset: int
    postgres_port: int
    extra_vars: Path

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{SERVICES[service].port + self.offset}{path}"

    def playbook(self, playbook: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(BIN / "ansible-playbook"),
                "-i",
                "inventories/local",
                playbook,
                "-e",
                f"@{self.extra_vars}",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "ANSIBLE_NOCOLOR": "1", "PATH": f"{BIN}:{os.environ['PATH']}"},
        )

    def supervisorctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        conf = self.state_dir / "supervisor" / "supervisord.conf"
        return subprocess.run(
            [str(BIN / "supervisorctl"), "-c", str(conf), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    def superuser_dsn(self) -> str:
        password = (self.state_dir / "secrets" / "postgres_superuser").read_text().split()[0]
        return f"postgresql://postgres:{password}@127.0.0.1:{self.postgres_port}/valuecanvas"


def recap(output: str) -> dict[str, int]:
    match = re.search(r"localhost\s+:\s+(.*)", output.split("PLAY RECAP")[-1])
    assert match, output[-3000:]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def wait_for(url: str, status: int, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == status:
                return response
        except httpx.TransportError:
            response = None
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer {status}: {response and response.text}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    # Not under pytest's tmp_path: the unprivileged Postgres user must be able to reach it.
    root = Path(tempfile.mkdtemp(prefix="valuecanvas-platform-"))
    root.chmod(0o755)
    state = root / "state"
    extra = root / "vars.json"
    platform = Platform(state, free_offset(), free_port(), extra)
    extra.write_text(
        json.dumps(
            {
                "local_platform_state_dir": str(state),
                "local_platform_port_offset": platform.offset,
                "local_platform_postgres_port": platform.postgres_port,
                "local_platform_redis_port": free_port(),
                "local_platform_redis": "enabled",
            }
        )
    )
    try:
        yield platform
    finally:
        platform.supervisorctl("shutdown")
        shutil.rmtree(root, ignore_errors=True)


def test_site_yml_brings_every_service_up_and_a_rerun_changes_nothing(platform: Platform) -> None:
    first = platform.playbook("site.yml")
    assert first.returncode == 0, first.stdout[-5000:]
    for name in SERVICES:
        response = httpx.get(platform.url(name, "/readyz"))
        assert response.json() == {
            "status": "ready",
            "checks": {"database": "ok", "redis": "ok"},
        }, name
    assert "api-gateway   http://127.0.0.1:" in first.stdout  # the table of services

    second = platform.playbook("site.yml")

    assert second.returncode == 0, second.stdout[-5000:]
    assert recap(second.stdout)["changed"] == 0, second.stdout[-5000:]
    status = platform.supervisorctl("status").stdout
    assert len(re.findall(r"RUNNING", status)) == len(SERVICES) + 2, status  # + postgres, redis


def test_the_settings_file_and_secrets_stay_private(platform: Platform) -> None:
    env_file = platform.state_dir / "platform.env"
    settings = env_file.read_text()

    assert env_file.stat().st_mode & 0o077 == 0
    assert (platform.state_dir / "secrets").stat().st_mode & 0o077 == 0
    assert re.search(
        r"^DATABASE_URL=postgresql://valuecanvas_app:\w{40}@127\.0\.0\.1:", settings, re.M
    )
    jwt_secret = re.search(r"^JWT_SECRET=(\w+)$", settings, re.M)
    assert jwt_secret
    assert len(jwt_secret.group(1)) == 40
    logs = "".join(path.read_text() for path in (platform.state_dir / "logs").glob("*.log"))
    assert jwt_secret.group(1) not in logs


def test_services_connect_as_a_role_without_privileges_of_its_own(platform: Platform) -> None:
    async def check() -> tuple[bool, bool, bool]:
        connection = await asyncpg.connect(platform.superuser_dsn())
        try:
            row = await connection.fetchrow(
                "select rolsuper, rolinherit, rolbypassrls from pg_roles where rolname = 'valuecanvas_app'"
            )
            return row["rolsuper"], row["rolinherit"], row["rolbypassrls"]
        finally:
            await connection.close()

    assert asyncio.run(check()) == (False, False, False)


def test_with_the_database_stopped_liveness_stays_and_readiness_fails(platform: Platform) -> None:
    async def write_marker() -> None:
        connection = await asyncpg.connect(platform.superuser_dsn())
        try:
            await connection.execute(
                "insert into public.organizations (name, slug) values ('Survivor', 'survivor')"
            )
        finally:
            await connection.close()

    async def read_marker() -> int:
        connection = await asyncpg.connect(platform.superuser_dsn())
        try:
            return int(
                await connection.fetchval(
                    "select count(*) from public.organizations where slug = 'survivor'"
                )
            )
        finally:
            await connection.close()

    asyncio.run(write_marker())
    assert platform.supervisorctl("stop", "postgres").returncode == 0

    for name in ("api-gateway", "llm-proxy"):
        assert httpx.get(platform.url(name, "/healthz")).status_code == 200
        down = httpx.get(platform.url(name, "/readyz"))
        assert down.status_code == 503
        assert down.json()["checks"]["database"].startswith("unreachable")
        assert down.json()["checks"]["redis"] == "ok"

    assert platform.supervisorctl("start", "postgres").returncode == 0
    wait_for(platform.url("api-gateway", "/readyz"), 200)
    assert asyncio.run(read_marker()) == 1  # the data survived the restart


def test_make_down_stops_everything_and_keeps_the_data(platform: Platform) -> None:
    down = platform.playbook("playbooks/teardown.yml")

    assert down.returncode == 0, down.stdout[-5000:]
    assert recap(down.stdout)["changed"] >= 1
    assert all(port_is_free(spec.port + platform.offset) for spec in SERVICES.values())
    assert port_is_free(platform.postgres_port)
    assert (platform.state_dir / "postgres" / "data" / "PG_VERSION").exists()
    again = platform.playbook("playbooks/teardown.yml")
    assert recap(again.stdout)["changed"] == 0
