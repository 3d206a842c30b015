"""Settings validated at start, and the `valuecanvas` commands as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
from pydantic import ValidationError

from tests.support.paths import MIGRATIONS
from tests.support.servers import Database
from tests.support.waiting import wait_until
from valuecanvas.core.settings import describe_validation_error
from valuecanvas.db import typegen
from valuecanvas.localdev.postgres import free_port
from valuecanvas.registry import SERVICES

GOOD = {
    "DATABASE_URL": "postgresql://app:pw@127.0.0.1:5432/valuecanvas",
    "JWT_SECRET": "a-real-looking-secret-0123456789abcdef",
    "INTERNAL_TOKEN_SECRET": "another-real-secret-0123456789abcdef",
}
CLI = [sys.executable, "-m", "valuecanvas.cli"]


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {
        key: value for key, value in os.environ.items() if key not in GOOD and key != "ENVIRONMENT"
    }
    return subprocess.run(
        [*CLI, *args], env={**clean, **env}, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        # An empty environment: every missing variable at once, JWT_SECRET included.
        (
            {},
            [
                "DATABASE_URL is not set",
                "INTERNAL_TOKEN_SECRET is not set",
                "JWT_SECRET or JWT_JWKS_URL must be set",
            ],
        ),
        ({"PORT": "eighty"}, ["PORT", "DATABASE_URL is not set", "JWT_SECRET or JWT_JWKS_URL"]),
        ({**GOOD, "DATABASE_URL": "mysql://x"}, ["DATABASE_URL"]),
        ({**GOOD, "PORT": "eighty"}, ["PORT"]),
        ({**GOOD, "LOG_LEVEL": "chatty"}, ["LOG_LEVEL"]),
        (
            {**GOOD, "JWT_ALGORITHMS": '["HS256", "none"]'},
            ["JWT_ALGORITHMS unsupported algorithm(s) none"],
        ),
        (
            {**{k: v for k, v in GOOD.items() if k != "JWT_SECRET"}},
            ["JWT_SECRET or JWT_JWKS_URL must be set"],
        ),
    ],
)
def test_a_bad_setting_stops_the_service_with_one_line_naming_it(
    env: dict[str, str], named: list[str]
) -> None:
    result = run_cli("serve", "target", env=env)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("target: invalid configuration: ")
    for fragment in named:
        assert fragment in lines[0]


def test_placeholder_secrets_are_refused_outside_local_mode() -> None:
    placeholder = {**GOOD, "JWT_SECRET": "your_jwt_secret_here_your_jwt_secret"}

    production = run_cli("serve", "llm-proxy", env={**placeholder, "ENVIRONMENT": "production"})

    assert production.returncode == 2
    assert "JWT_SECRET looks like a placeholder" in production.stderr
    assert "your_jwt_secret_here" not in production.stderr  # the value itself is never echoed
    settings_class = SERVICES["llm-proxy"].settings_class()
    # In local mode the same value is accepted (the local platform generates real ones anyway).
    local = settings_class(_env_file=None, **{k.lower(): v for k, v in placeholder.items()})
    assert local.environment == "local"


def test_error_lines_never_echo_values() -> None:
    settings_class = SERVICES["api-gateway"].settings_class()
    with pytest.raises(ValidationError) as error:
        settings_class(
            _env_file=None,
            database_url="not a url with s3cr3t",
            internal_token_secret="x" * 40,
            jwt_secret="y" * 40,
        )

    line = describe_validation_error("api-gateway", error.value)
    assert "DATABASE_URL" in line
    assert "s3cr3t" not in line


def test_a_service_logs_json_lines_with_the_request_id_and_no_secrets(
    database: Database, tmp_path: Path
) -> None:
    port = free_port()
    env_file = tmp_path / "platform.env"
    env_file.write_text(
        f"DATABASE_URL={database.app_dsn}\nJWT_SECRET={GOOD['JWT_SECRET']}\n"
        f"INTERNAL_TOKEN_SECRET={GOOD['INTERNAL_TOKEN_SECRET']}\n"
    )
    log = tmp_path / "service.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [*CLI, "serve", "orchestrator", "--env-file", str(env_file), "--port", str(port)],
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            response = wait_until(
                lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", headers={"X-Request-ID": "trace-42"}),
                what=f"the service on {port} answering (log: {log})", interval=0.2,
                ignore=(httpx.TransportError,),
            )  # fmt: skip
            denied = httpx.get(
                f"http://127.0.0.1:{port}/v1/whoami", headers={"X-Request-ID": "trace-43"}
            )
        finally:
            process.terminate()
            process.wait(timeout=15)

    assert response.status_code == 200
    assert denied.status_code == 401
    output = log.read_text()
    records = [json.loads(line) for line in output.splitlines()]  # every line is JSON
    request_lines = [r for r in records if r["event"] == "request"]
    assert {"request_id": "trace-43", "status": 401, "path": "/v1/whoami"}.items() <= request_lines[
        -1
    ].items()
    assert all(r["service"] == "orchestrator" for r in records)
    assert GOOD["JWT_SECRET"] not in output
    assert GOOD["INTERNAL_TOKEN_SECRET"] not in output


def test_migrate_and_doctor_commands(empty_database: str, tmp_path: Path) -> None:
    env = {"MIGRATION_DATABASE_URL": empty_database}

    before = run_cli("doctor", "--dir", str(MIGRATIONS), env=env)
    first = run_cli("migrate", "--dir", str(MIGRATIONS), env=env)
    again = run_cli("migrate", "--dir", str(MIGRATIONS), env=env)
    after = run_cli("doctor", "--dir", str(MIGRATIONS), env=env)

    assert before.returncode == 1
    assert "FAIL  migrations" in before.stdout
    assert first.returncode == 0
    count = len(list(MIGRATIONS.glob("*.sql")))
    assert first.stdout.strip().endswith(f"migrations: {count} applied, 0 already applied")
    assert again.stdout.strip() == f"migrations: 0 applied, {count} already applied"
    assert after.returncode == 0, after.stdout
    assert after.stdout.strip().endswith("doctor: all checks passed")


def test_migrate_refuses_an_edited_file_by_name(empty_database: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    for file in MIGRATIONS.glob("*.sql"):
        (folder / file.name).write_text(file.read_text())
    env = {"MIGRATION_DATABASE_URL": empty_database}
    assert run_cli("migrate", "--dir", str(folder), env=env).returncode == 0
    (folder / "0001_supabase_compat.sql").write_text("-- rewritten\n")

    refused = run_cli("migrate", "--dir", str(folder), env=env)

    assert refused.returncode == 1
    assert "0001_supabase_compat.sql was applied but has changed" in refused.stderr
    assert "nothing was applied" in refused.stderr


def test_the_token_command_mints_a_token_the_services_accept() -> None:
    user = uuid.uuid4()
    result = run_cli("token", "--user", str(user), env={"JWT_SECRET": GOOD["JWT_SECRET"]})

    claims = jwt.decode(
        result.stdout.strip(), GOOD["JWT_SECRET"], algorithms=["HS256"], audience="authenticated"
    )
    assert claims["sub"] == str(user)


async def test_the_committed_generated_types_match_the_schema(database: Database) -> None:
    generated = await typegen.generate(database.owner_dsn)

    assert typegen.stale_files(generated) == [], "run `make types` and commit the result"
    assert "class BillingInvoicesRow(BaseModel):" in generated[typegen.PYTHON_FILE]
    assert (
        'status: "draft" | "open" | "paid" | "void" | "uncollectible";'
        in generated[typegen.TYPESCRIPT_FILE]
    )


def test_stale_generated_types_are_detected(tmp_path: Path) -> None:
    (tmp_path / typegen.PYTHON_FILE).write_text("old")

    assert typegen.stale_files(
        {typegen.PYTHON_FILE: "new", typegen.TYPESCRIPT_FILE: "x"}, tmp_path
    ) == [
        typegen.PYTHON_FILE,
        typegen.TYPESCRIPT_FILE,
    ]
