"""The forward-only migration runner.

- Files are ``NNNN_description.sql`` in one folder, applied in order.
- A session-level advisory lock serializes runners: concurrent runs queue, and the second
  finds nothing left to do.
- Each applied file is recorded with its sha256. An applied file that has changed, or
  disappeared, is refused by name before anything is applied.
- Each file runs in its own transaction with a lock timeout, together with its record, so
  a file is either applied and recorded or neither.

Why not a library: yoyo, alembic and dbmate lack checksum refusal or the advisory lock,
and flyway/sqitch need a JVM or Perl that the service image does not carry.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

# Arbitrary but fixed: every runner of this platform contends for the same lock.
ADVISORY_LOCK_KEY = 7_214_963_501
MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_BOOTSTRAP = """
create schema if not exists platform;
create table if not exists platform.schema_migrations (
    filename   text primary key,
    sha256     text not null check (sha256 ~ '^[0-9a-f]{64}$'),
    applied_at timestamptz not null default now(),
    applied_by text not null default current_user,
    duration_ms integer not null check (duration_ms >= 0)
);
alter table platform.schema_migrations enable row level security;
alter table platform.schema_migrations force row level security;
do $$
begin
  if not exists (
    select 1 from pg_policies
    where schemaname = 'platform' and tablename = 'schema_migrations'
      and policyname = 'migration_runner_all'
  ) then
    -- Only the role that runs migrations (the table's owner) reads or writes the record.
    execute 'create policy migration_runner_all on platform.schema_migrations'
         || ' for all to current_user using (true) with check (true)';
  end if;
end $$;
revoke all on platform.schema_migrations from public;
"""


class MigrationError(Exception):
    """Refused before anything was applied, or a file failed (its transaction rolled back)."""


@dataclass(frozen=True)
class MigrationFile:
    filename: str
    path: Path
    sha256: str

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


@dataclass
class MigrationPlan:
    applied: list[str]
    pending: list[MigrationFile]
    changed: list[str]
    missing: list[str]

    @property
    def problems(self) -> list[str]:
        return [
            *(
                f"{name} was applied but has changed since (sha256 differs)"
                for name in self.changed
            ),
            *(
                f"{name} was applied but is no longer in the migrations folder"
                for name in self.missing
            ),
        ]


@dataclass
class MigrationResult:
    applied: list[str]
    already_applied: int


def discover(directory: Path) -> list[MigrationFile]:
    if not directory.is_dir():
        raise MigrationError(f"migrations folder {directory} does not exist")
    files = []
    seen_numbers: dict[str, str] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = MIGRATION_FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lowercase_words.sql")
        number = match.group(1)
        if number in seen_numbers:
            raise MigrationError(
                f"{path.name}: number {number} is also used by {seen_numbers[number]}"
            )
        seen_numbers[number] = path.name
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        files.append(MigrationFile(path.name, path, digest))
    return files


async def _recorded(connection: asyncpg.Connection) -> dict[str, str] | None:
    exists = await connection.fetchval(
        "select to_regclass('platform.schema_migrations') is not null"
    )
    if not exists:
        return None
    rows = await connection.fetch("select filename, sha256 from platform.schema_migrations")
    return {row["filename"]: row["sha256"] for row in rows}


def make_plan(files: list[MigrationFile], recorded: dict[str, str]) -> MigrationPlan:
    on_disk = {file.filename: file for file in files}
    changed = sorted(
        name
        for name, digest in recorded.items()
        if name in on_disk and on_disk[name].sha256 != digest
    )
    missing = sorted(name for name in recorded if name not in on_disk)
    pending = [file for file in files if file.filename not in recorded]
    return MigrationPlan(
        applied=sorted(recorded), pending=pending, changed=changed, missing=missing
    )


async def inspect(connection: asyncpg.Connection, directory: Path) -> MigrationPlan:
    """What a run would do, without taking the lock or changing anything (for the doctor)."""
    return make_plan(discover(directory), await _recorded(connection) or {})


async def migrate(
    dsn: str,
    directory: Path,
    *,
    lock_timeout: str = "10s",
    report: Callable[[str], None] = print,
) -> MigrationResult:
    files = discover(directory)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("select pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
        try:
            await connection.execute(_BOOTSTRAP)
            plan = make_plan(files, await _recorded(connection) or {})
            if plan.problems:
                raise MigrationError(
                    "refusing to migrate, nothing was applied: " + "; ".join(plan.problems)
                )
            applied: list[str] = []
            for file in plan.pending:
                started = time.perf_counter()
                try:
                    async with connection.transaction():
                        await connection.execute(f"set local lock_timeout = '{lock_timeout}'")
                        await connection.execute(file.sql())
                        duration_ms = int((time.perf_counter() - started) * 1000)
                        await connection.execute(
                            "insert into platform.schema_migrations (filename, sha256, duration_ms)"
                            " values ($1, $2, $3)",
                            file.filename,
                            file.sha256,
                            duration_ms,
                        )
                except asyncpg.PostgresError as exc:
                    raise MigrationError(
                        f"{file.filename} failed and was rolled back: {exc}"
                        + (f" ({len(applied)} earlier file(s) stay applied)" if applied else "")
                    ) from exc
                applied.append(file.filename)
                report(f"applied {file.filename} ({duration_ms} ms)")
            report(f"migrations: {len(applied)} applied, {len(plan.applied)} already applied")
            return MigrationResult(applied=applied, already_applied=len(plan.applied))
        finally:
            await connection.execute("select pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    finally:
        await connection.close()
