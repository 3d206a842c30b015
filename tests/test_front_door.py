"""What a newcomer meets first: the Makefile's targets and the playbooks' first checks,
run as a user runs them (make, ansible-playbook), with the failures they must explain."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support.paths import REPO, copy_wheel_postgres
from tests.support.rehearsals import BIN, make, playbook, tool_env
from tests.support.threaded import ThreadedApp
from valuecanvas.localdev import ports, ready
from valuecanvas.localdev import postgres as localdev_postgres
from valuecanvas.localdev.emulator import answers, aws_emulator
from valuecanvas.localdev.kube_standin import answers as kube_answers
from valuecanvas.localdev.postgres import TemporaryPostgres, free_port

INVENTORIES = "inventories/local, inventories/production, inventories/sandbox, inventories/staging"


@pytest.fixture
def listener() -> Iterator[int]:
    """A port this test process listens on."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


@pytest.mark.parametrize(
    "command",
    [
        [str(BIN / "ansible-playbook"), "-i", "inventories/nonexistent", "site.yml"],
        [str(BIN / "ansible-playbook"), "-i", "sandbox", "playbooks/teardown.yml"],
        ["make", "-s", "up", "INVENTORY=sandbox"],
    ],
    ids=["site.yml", "teardown.yml", "make-up"],
)
def test_a_misspelled_inventory_fails_and_names_the_inventories(command: list[str]) -> None:
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=tool_env())  # fmt: skip

    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    assert "has no hosts (is it misspelled?)" in output
    assert INVENTORIES in output
    assert "PLAY [Bring the whole platform up on this machine]" not in output


@pytest.mark.emulator
def test_the_sandbox_with_its_emulator_passes_the_check_in_check_mode(tmp_path: Path) -> None:
    with aws_emulator(tmp_path / "moto.log") as endpoint:
        planned = playbook("site.yml", "--check", "--tags", "never", endpoint=endpoint)

    assert planned.returncode == 0, planned.stdout[-3000:]
    assert "No AWS emulator answers" not in planned.stdout


def test_the_sandbox_without_its_emulator_says_to_start_it() -> None:
    nobody = f"http://127.0.0.1:{free_port()}"

    up = playbook("site.yml", endpoint=nobody)
    down = playbook("playbooks/teardown.yml", endpoint=nobody)

    for result in (up, down):
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert f"No AWS emulator answers at {nobody}" in output
        assert "start it with `make emulator`" in output
        assert "Could not connect to the endpoint URL" not in output
    assert "PLAY [Provision the AWS substrate]" not in up.stdout  # stopped in the first play


@pytest.mark.emulator
def test_make_emulator_returns_once_the_emulator_answers(tmp_path: Path) -> None:
    port, kube = free_port(), free_port()
    ports = (f"EMULATOR_PORT={port}", f"KUBE_PORT={kube}", f"STATE_DIR={tmp_path}")
    started = make("emulator", *ports)
    try:
        assert started.returncode == 0, started.stderr
        assert answers(f"http://127.0.0.1:{port}")  # no sleep: it answered before make returned
        assert kube_answers(f"http://127.0.0.1:{kube}")  # and the Kubernetes API stand-in
        again = make("emulator", *ports)
        assert "already answering" in again.stdout
    finally:
        stopped = make("emulator-stop", f"STATE_DIR={tmp_path}")
    assert stopped.returncode == 0
    assert not kube_answers(f"http://127.0.0.1:{kube}")


def test_make_cost_prints_the_table_alone() -> None:
    result = make("cost", "INVENTORY=inventories/production")

    assert result.returncode == 0, result.stdout[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Monthly cost: production (us-east-1")
    assert lines[-1].startswith("Total")
    assert len(lines) < 25
    assert "TASK [" not in result.stdout
    assert "WARNING" not in result.stdout + result.stderr  # no "loop variable 'item' in use"


def test_make_lock_builds_the_virtualenv_first(tmp_path: Path) -> None:
    for name in ("Makefile", "pyproject.toml", "requirements.lock"):
        shutil.copy(REPO / name, tmp_path / name)

    cache = tmp_path / "cache"  # a machine that has never built one: uv comes first
    plan = make("-n", "lock", f"CACHE_DIR={cache}", cwd=tmp_path).stdout

    steps = [
        f"-m venv {cache}/uv-",  # uv, from the lock's own hashes
        "--require-hashes",
        "venv --quiet --python python3.11 .venv",  # then the project's venv
        "uv pip compile",
    ]
    assert [step in plan for step in steps] == [True] * len(steps), plan
    assert sorted(steps, key=plan.index) == steps, plan


def test_make_status_and_doctor_say_the_platform_is_down(tmp_path: Path) -> None:
    never = make("doctor", f"STATE_DIR={tmp_path}")
    status = make("status", f"STATE_DIR={tmp_path}")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "migrate.env").write_text(
        f"MIGRATION_DATABASE_URL=postgresql://postgres:pw@127.0.0.1:{free_port()}/valuecanvas\n"
    )
    stopped = make("doctor", f"STATE_DIR={tmp_path}")

    assert status.returncode == 0
    assert "The local platform is down" in status.stdout
    assert "no such file" not in status.stdout + status.stderr
    assert never.returncode != 0
    assert "never brought up here" in never.stdout
    assert stopped.returncode != 0
    assert "the database does not answer: is the platform down? (make up starts it)" in (
        stopped.stdout
    )


def test_ports_name_the_process_that_holds_them(listener: int) -> None:
    found = ports.problems({"target": listener}, supervisor_pid=None)
    ours = ports.problems({"target": listener}, supervisor_pid=os.getppid())
    free = ports.problems({"target": free_port()}, supervisor_pid=None)

    assert found == [f"port {listener} (target) is already in use by {ports.describe(os.getpid())}"]
    assert "pytest" in found[0] or "python" in found[0]
    assert ours == []  # a process under the given supervisor is the platform's own
    assert free == []


def test_the_readiness_wait_names_each_service_that_is_not_ready() -> None:
    """`make up`'s last wait, against real servers: one ready, one that becomes ready
    after a few probes, one answering 503, one port nobody listens on."""
    probes: dict[str, int] = {"late": 0}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        name = scope["path"].strip("/").split("/")[0]
        probes[name] = probes.get(name, 0) + 1
        status = 503 if name == "broken" or (name == "late" and probes[name] < 3) else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b'{"status": "not ready"}'})

    server = ThreadedApp(app, "the readiness stand-in")
    server.start()
    try:
        services = {name: f"{server.url}/{name}/readyz" for name in ("ready", "late", "broken")}
        services["absent"] = f"http://127.0.0.1:{free_port()}/readyz"
        states = asyncio.run(ready.wait_ready(services, within=2, interval=0.1))
        counted = dict(probes)
        exit_codes = [ready.main([json.dumps({name: services[name]}), "--timeout", "0.3"])
                      for name in ("ready", "broken")]  # fmt: skip
    finally:
        server.stop()

    assert states["ready"] == states["late"] == "ready"
    assert counted["ready"] == 1  # a ready service is not probed again
    assert counted["late"] == 3
    assert states["broken"] == '503: {"status": "not ready"}'
    assert "connect" in states["absent"].lower()
    assert exit_codes == [0, 1]


def test_postgres_runs_from_binaries_in_a_folder_only_root_can_enter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As root, a checkout in a private folder (its .venv, and so the wheel's binaries,
    inside it) must still start Postgres as the unprivileged user: the binaries are copied
    where that user reaches them. (Not root: Postgres runs as us, and nothing is copied.)"""
    private = Path(tempfile.mkdtemp(prefix="valuecanvas-private-"))  # mode 0700
    runtime = Path(tempfile.mkdtemp(prefix="valuecanvas-runtime-"))
    runtime.chmod(0o755)
    try:
        monkeypatch.setenv("VALUECANVAS_PG_BIN_DIR", str(copy_wheel_postgres(private)))
        monkeypatch.setattr(localdev_postgres, "RUNTIME_ROOT", runtime)

        chosen = localdev_postgres.postgres_bin_dir()
        with TemporaryPostgres() as server:
            version = asyncio.run(_server_version(server.dsn()))

        assert version.startswith("16")
        if os.geteuid() == 0:
            assert not localdev_postgres.reachable_by_others(private)
            assert chosen.is_relative_to(runtime)
            assert localdev_postgres.reachable_by_others(chosen / "initdb")
            assert localdev_postgres.postgres_bin_dir() == chosen  # copied once
        else:
            assert chosen == private / "pgserver" / "pginstall" / "bin"
    finally:
        shutil.rmtree(private, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)


async def _server_version(dsn: str) -> str:
    connection = await asyncpg.connect(dsn)
    try:
        return str(await connection.fetchval("show server_version"))
    finally:
        await connection.close()
