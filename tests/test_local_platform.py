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
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.paths import BIN, REPO, copy_wheel_postgres
from tests.support.rehearsals import make
from tests.support.waiting import wait_until
from tests.support.workflows import CASE, EXPECTED
from valuecanvas.localdev.postgres import free_port
from valuecanvas.registry import SERVICES

pytestmark = pytest.mark.platform


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def free_offset() -> int:
    # Below the ephemeral ports (32768 and up), and not 21000: the local_platform molecule
    # scenario's, which runs in the background (29000-29432).
    for offset in (20000, 22000, 23000):
        if all(port_is_free(spec.entry.port + offset) for spec in SERVICES.values()):
            return offset
    raise RuntimeError("no free block of ports for the services")


@dataclass
class Platform:
    state_dir: Path
    offset: int
    postgres_port: int
    extra_vars: Path
    checkout: Path = REPO
    runtime_root: Path | None = None

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{SERVICES[service].entry.port + self.offset}{path}"

    def playbook(self, playbook: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(BIN / "ansible-playbook"),
                "-i",
                "inventories/local",
                playbook,
                "-e",
                f"@{self.extra_vars}",
                *extra,
            ],
            cwd=self.checkout,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "ANSIBLE_NOCOLOR": "1", "PATH": f"{BIN}:{os.environ['PATH']}"},
        )

    def data_dir(self) -> Path:
        """Where PostgreSQL keeps its data: the state directory, unless root runs the
        platform from a folder its service user cannot enter (then under the runtime root)."""
        if os.geteuid() == 0 and self.runtime_root is not None:
            instance = (self.state_dir / "secrets" / "instance_id").read_text().strip()
            return self.runtime_root / instance / "postgres" / "data"
        return self.state_dir / "postgres" / "data"

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
    def answer() -> httpx.Response | None:
        response = httpx.get(url, timeout=5)
        return response if response.status_code == status else None

    return wait_until(answer, what=f"{url} answering {status}", timeout=timeout, interval=0.5,
                      ignore=(httpx.TransportError,))  # fmt: skip


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    """The platform as a newcomer gets it: a checkout in a folder only its owner may enter
    (root's home, mktemp -d), the wheel's PostgreSQL binaries in that folder too (as a .venv
    in the checkout has them), the state in the checkout's own .state/. Only the ports move
    (beside a developer's own platform), and the runtime root (for root: what the service
    user must reach, outside the private folder)."""
    private = Path(tempfile.mkdtemp(prefix="valuecanvas-private-"))  # mode 0700
    runtime = Path(tempfile.mkdtemp(prefix="valuecanvas-runtime-"))
    runtime.chmod(0o755)
    checkout = private / "checkout"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, files):
        if (REPO / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, checkout / name)
    postgres_bin_dir = copy_wheel_postgres(private)
    platform = Platform(checkout / ".state", free_offset(), free_port(), private / "vars.json",
                        checkout=checkout, runtime_root=runtime)  # fmt: skip
    # The developer's own settings file: a limit high enough for the schemathesis runs.
    (private / "local.env").write_text(
        "# mine\nLLM_USER_LIMIT_PER_HOUR=5000\n"
        + "".join(
            f"GATEWAY_LIMIT_PER_{scope}=100000\n"
            for scope in ("USER", "API_KEY", "ORGANIZATION", "IP")
        )
    )
    platform.extra_vars.write_text(json.dumps({
        "local_platform_overrides_file": str(private / "local.env"),
        "local_platform_port_offset": platform.offset,
        "local_platform_postgres_port": platform.postgres_port,
        "local_platform_redis_port": free_port(),
        "local_platform_redis": "enabled",
        "local_platform_postgres_bin_dir": str(postgres_bin_dir),
        "local_platform_runtime_root": str(runtime),
    }))  # fmt: skip
    try:
        yield platform
    finally:
        platform.supervisorctl("shutdown")
        shutil.rmtree(private, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)


def changed_tasks(output: str) -> list[str]:
    """The names of the tasks (and handlers) a playbook run reports changed, in order."""
    changed, task = [], ""
    for line in output.splitlines():
        if header := re.match(r"^(?:TASK|RUNNING HANDLER) \[(?:[\w.]+ : )?(.+)\] \*+$", line):
            task = header.group(1)
        elif line.startswith("changed: ") and task not in changed:
            changed.append(task)
    return changed


def test_site_yml_brings_every_service_up(platform: Platform) -> None:
    first = platform.playbook("site.yml")

    assert first.returncode == 0, first.stdout[-5000:]
    for name in SERVICES:
        response = httpx.get(platform.url(name, "/readyz"))
        engine = {"engine": "ok"} if name == "orchestrator" else {}  # its workflow engine
        assert response.json() == {
            "status": "ready",
            "checks": {"database": "ok", "redis": "ok", **engine},
        }, name
    assert "api-gateway   http://127.0.0.1:" in first.stdout  # the table of services
    status = platform.supervisorctl("status").stdout
    assert len(re.findall(r"RUNNING", status)) == len(SERVICES) + 2, status  # + postgres, redis
    assert (platform.data_dir() / "PG_VERSION").exists()
    if os.geteuid() == 0:  # the binaries the service user needs, outside the private folder
        assert platform.runtime_root is not None
        assert list(platform.runtime_root.glob("pginstall-*/pgserver/pginstall/bin/postgres"))


def test_a_rerun_changes_nothing_but_restores_a_hand_edited_settings_file(
    platform: Platform,
) -> None:
    """The second site.yml run: nothing changes, except that the hand edit of the generated
    settings file is undone, and named (never its value); the services keep running."""
    env_file = platform.state_dir / "platform.env"
    before = env_file.read_text()
    assert before.rstrip().endswith("GATEWAY_LIMIT_PER_IP=100000")  # local.env, merged in
    env_file.write_text(before + "OPENAI_API_KEY=sk-hand-edited-0123456789abcdef\n")
    pids = platform.supervisorctl("pid", "all").stdout.split()

    rerun = platform.playbook("site.yml")

    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert changed_tasks(rerun.stdout) == ["services | Ensure the services' settings are written"]
    assert recap(rerun.stdout)["changed"] == 1, rerun.stdout[-3000:]
    assert env_file.read_text() == before
    assert "your edits of OPENAI_API_KEY were replaced" in rerun.stdout
    assert "sk-hand-edited" not in rerun.stdout  # the name, never the value
    assert "local.env" in rerun.stdout
    # The services kept running: the settings they read did not change.
    assert platform.supervisorctl("pid", "all").stdout.split() == pids


def test_a_bad_line_in_local_settings_is_named(platform: Platform, tmp_path: Path) -> None:
    bad = tmp_path / "local.env"
    bad.write_text("# fine\nLOG_LEVEL=DEBUG\nexport TOGETHER_API_KEY sk-x\n")

    result = platform.playbook("site.yml", "-e", f"local_platform_overrides_file={bad}")

    assert result.returncode != 0
    assert f"{bad}: line(s) 3" in result.stdout
    assert "must be NAME=value" in result.stdout


def test_a_busy_port_is_named_with_what_holds_it(platform: Platform) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = platform.playbook("site.yml", "-e", f"local_platform_redis_port={port}")

    assert result.returncode != 0
    assert f"port {port} (redis) is already in use by pid {os.getpid()}" in result.stdout
    assert "local_platform_redis_port" in result.stdout
    assert "already started" not in result.stdout


def test_seed_demo_gives_a_token_that_sees_its_organization(platform: Platform) -> None:
    first, token = seed_demo(platform), seed_demo(platform)  # a rerun finds the same

    whoami = httpx.get(platform.url("api-gateway", "/v1/whoami"),
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip

    assert whoami.status_code == 200
    assert [org["name"] for org in whoami.json()["organizations"]] == ["Demo Co"]
    assert jwt_claims(first)["sub"] == jwt_claims(token)["sub"]


def demo_api_key(platform: Platform) -> str:
    result = subprocess.run(
        [str(BIN / "valuecanvas"), "create-api-key", "--env-file", str(platform.state_dir / "platform.env"),
         "--organization", "demo", "--name", "schemathesis", "--scope", "admin"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return result.stdout.strip()


CREDENTIALS = [(name, "token") for name in sorted(SERVICES)] + [("api-gateway", "api key")]


def test_the_gateway_routes_to_the_local_services(platform: Platform) -> None:
    """A chat completion through the gateway reaches the local llm-proxy (ports moved by the
    platform's offset), attributed to the demo owner; an API key works the same way."""
    token, key = seed_demo(platform), demo_api_key(platform)
    body = {"model": "valuecanvas-default", "messages": [{"role": "user", "content": "hello"}]}

    answers = [
        httpx.post(platform.url("api-gateway", "/v1/chat/completions"), json=body,
                   headers=headers, timeout=30)
        for headers in ({"Authorization": f"Bearer {token}"}, {"X-API-Key": key})
    ]  # fmt: skip

    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert "offline" in answer.json()["choices"][0]["message"]["content"]


def test_a_value_case_through_the_gateway_on_the_local_platform(platform: Platform) -> None:
    """The README's step 5: discovery notes in through the gateway, the run followed as
    server-sent events to its end, the case approved (the integrity check passed)."""
    headers = {"Authorization": f"Bearer {seed_demo(platform)}"}
    started = httpx.post(platform.url("api-gateway", "/v1/value-cases"), json=CASE,
                         headers=headers, timeout=30)  # fmt: skip
    assert started.status_code == 202, started.text
    with httpx.stream("GET", platform.url("api-gateway", started.headers["Location"] + "/events"),
                      headers=headers, timeout=60) as events:  # fmt: skip
        names = [line.removeprefix("event: ") for line in events.iter_lines()
                 if line.startswith("event: ")]  # fmt: skip

    case = httpx.get(platform.url("api-gateway", f"/v1/value-cases/{started.json()['value_case_id']}"),
                     headers=headers, timeout=10).json()  # fmt: skip
    assert names[-1] == "end"
    assert "progress" in names
    assert (case["status"], case["verdict"]) == ("approved", "pass")
    expected = {s["name"]: s for s in case["result"]["business_case"]["scenarios"]}["expected"]
    assert Decimal(str(expected["npv"])) == EXPECTED["npv"]


@pytest.mark.parametrize(("name", "credential"), CREDENTIALS)
def test_every_service_does_what_its_openapi_document_says(
    platform: Platform, name: str, credential: str
) -> None:
    """Schemathesis, every check, against the running service: no 5xx, and no response,
    status, header or content type that the document does not describe. The gateway (the
    public API) is run twice: with a user's token, and with an API key (its examples and
    coverage phases, without the random fuzzing that the token's run does)."""
    token = seed_demo(platform)
    header = (
        f"Authorization: Bearer {token}"
        if credential == "token"
        else f"X-API-Key: {demo_api_key(platform)}"
    )
    result = subprocess.run(
        [str(BIN / "schemathesis"), "--config-file", str(REPO / "tests" / "schemathesis.toml"),
         "run", platform.url(name, "/openapi.json"), "--checks", "all",
         "--header", header, "--max-examples", "30",
         # The key's run is for its way through authentication; the token's run fuzzes.
         *(["--phases", "examples,coverage"] if credential == "api key" else []),
         "--no-color", "--output-truncate", "false"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-6000:]
    assert re.search(r"\d+ passed", result.stdout), result.stdout[-2000:]
    assert "Tested: " in result.stdout


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
    assert all(port_is_free(spec.entry.port + platform.offset) for spec in SERVICES.values())
    assert port_is_free(platform.postgres_port)
    assert (platform.data_dir() / "PG_VERSION").exists()
    again = platform.playbook("playbooks/teardown.yml")
    assert recap(again.stdout)["changed"] == 0
    status = make("status", f"STATE_DIR={platform.state_dir}")
    assert status.returncode == 0
    assert "The local platform is down" in status.stdout
    doctor = make("doctor", f"STATE_DIR={platform.state_dir}")
    assert doctor.returncode != 0
    assert "is the platform down? (make up starts it)" in doctor.stdout


def seed_demo(platform: Platform) -> str:
    result = subprocess.run(
        [str(BIN / "valuecanvas"), "seed-demo", "--env-file", str(platform.state_dir / "platform.env")],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return result.stdout.strip()


def jwt_claims(token: str) -> dict[str, Any]:
    import jwt

    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims
