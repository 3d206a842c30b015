"""The usage ledger: a durable record of every completion, written off the request path.

The request path only appends the entry to a durable queue before the answer leaves:
a Redis stream (XADD) when Redis is configured, else a local journal file (fsync'd). A
drainer task moves entries into Postgres with ``insert ... on conflict do nothing`` keyed
by the request id, and only then acknowledges them. So a completion is recorded even if
Postgres is down for a while (the queue waits) or the process is killed right after
answering (another replica, or the restarted one, claims what was not acknowledged).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import asyncpg
import redis.asyncio as redis

from valuecanvas.core.db import Pool, caller_transaction
from valuecanvas.core.identity import Identity
from valuecanvas.core.logging import get_logger
from valuecanvas.generated.database import LlmUsageInsert

_log = get_logger("valuecanvas.llm.ledger")
BATCH = 200  # entries moved per transaction, at most
SERVICE_ROLE = Identity(
    user_id=None, organization_id=None, role="service_role", via="internal_token"
)
_INSERT = """
insert into public.llm_usage (
  request_id, user_id, organization_id, logical_model, provider, provider_model, attempts,
  prompt_tokens, completion_tokens, tokens_estimated, cost_usd, latency_ms, status, error, streamed
) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
on conflict (request_id) do nothing
"""


# One ledger entry is one row of public.llm_usage: the model generated from the table.
LedgerEntry = LlmUsageInsert
_COLUMNS = (
    "request_id", "user_id", "organization_id", "logical_model", "provider", "provider_model",
    "attempts", "prompt_tokens", "completion_tokens", "tokens_estimated", "cost_usd", "latency_ms",
    "status", "error", "streamed",
)  # fmt: skip


def to_json(entry: LedgerEntry) -> str:
    return entry.model_dump_json(exclude_none=True)


def from_json(raw: str | bytes) -> LedgerEntry:
    return LedgerEntry.model_validate_json(raw)


async def insert_entries(pool: Pool, entries: Sequence[LedgerEntry]) -> None:
    async with caller_transaction(pool, SERVICE_ROLE) as connection:
        await connection.executemany(
            _INSERT, [tuple(getattr(entry, column) for column in _COLUMNS) for entry in entries]
        )


class Ledger(Protocol):
    async def record(self, entry: LedgerEntry) -> None: ...
    async def drain_once(self, block_ms: int | None = ...) -> int: ...
    async def backlog(self) -> int: ...


class RedisStreamLedger:
    """XADD on the request path; a consumer group drains into Postgres."""

    group = "ledger-writers"

    def __init__(
        self, client: redis.Redis, pool: Pool, stream: str, claim_idle_seconds: float
    ) -> None:
        self.client = client
        self.pool = pool
        self.stream = stream
        self.claim_idle_ms = int(claim_idle_seconds * 1000)
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"
        self._group_ready = False
        # Entries read but not yet acknowledged may be ours (a failed batch, or at start).
        self._own_pending = True
        self._next_claim = 0.0

    async def record(self, entry: LedgerEntry) -> None:
        await self.client.xadd(self.stream, {"entry": to_json(entry)})  # never trimmed

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def _read(self, start_id: str, block_ms: int | None) -> list[Any]:
        # RESP2 (the client's default) answers a list of [stream, messages] pairs.
        response = cast(
            "list[Any]",
            await self.client.xreadgroup(
                self.group, self.consumer, {self.stream: start_id}, count=BATCH, block=block_ms
            ),
        )
        return [message for _, batch in response for message in batch]

    async def drain_once(self, block_ms: int | None = 1000) -> int:
        """Move one batch into Postgres: this consumer's own unacknowledged entries first,
        then those another consumer left idle (it died), then new ones."""
        await self._ensure_group()
        messages: list[Any] = []
        if self._own_pending:
            messages = [message for message in await self._read("0", None) if message[1]]
            self._own_pending = bool(messages)
        if not messages and time.monotonic() >= self._next_claim:
            # Looked for every half idle period: only a dead consumer leaves entries there.
            self._next_claim = time.monotonic() + self.claim_idle_ms / 2000
            claimed = await self.client.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=self.claim_idle_ms,
                count=BATCH,
            )
            messages = [message for message in claimed[1] if message[1]]
        if not messages:
            messages = [message for message in await self._read(">", block_ms) if message[1]]
        if not messages:
            return 0
        self._own_pending = True  # until this batch is acknowledged
        entries = [from_json(fields[b"entry"]) for _, fields in messages]
        await insert_entries(self.pool, entries)
        ids = [message_id for message_id, _ in messages]
        await self.client.xack(self.stream, self.group, *ids)
        await self.client.xdel(self.stream, *ids)
        return len(entries)

    async def backlog(self) -> int:
        length: int = await self.client.xlen(self.stream)
        return length


class JournalLedger:
    """For a single local process without Redis: an append-only file, fsync'd per entry."""

    def __init__(self, path: Path, pool: Pool) -> None:
        self.path = path
        self.offset_path = path.with_suffix(path.suffix + ".offset")
        self.pool = pool
        self._lock = asyncio.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def _append(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as journal:
            journal.write(line + "\n")
            journal.flush()
            os.fsync(journal.fileno())

    async def record(self, entry: LedgerEntry) -> None:
        async with self._lock:
            await asyncio.to_thread(self._append, to_json(entry))

    def _offset(self) -> int:
        with contextlib.suppress(FileNotFoundError, ValueError):
            return int(self.offset_path.read_text())
        return 0

    async def drain_once(self, block_ms: int | None = None) -> int:
        async with self._lock:
            if not self.path.exists():
                return 0
            offset = self._offset()
            with self.path.open("rb") as journal:
                journal.seek(offset)
                data = journal.read()
            complete = data[: data.rfind(b"\n") + 1]
            if not complete:
                return 0
            entries = [from_json(line) for line in complete.splitlines() if line]
            await insert_entries(self.pool, entries)
            end = offset + len(complete)
            if end == self.path.stat().st_size:
                self.path.write_bytes(b"")  # all drained: start the file over
                self.offset_path.write_text("0")
            else:
                self.offset_path.write_text(str(end))
            return len(entries)

    async def backlog(self) -> int:
        if not self.path.exists():
            return 0
        with self.path.open("rb") as journal:
            journal.seek(self._offset())
            return journal.read().count(b"\n")


async def flush(ledger: Ledger, timeout_seconds: float = 5.0) -> None:
    """On shutdown: move what is queued into Postgres, within a time limit. What is left
    stays queued, durable, for the next drainer."""
    try:
        async with asyncio.timeout(timeout_seconds):
            while await ledger.drain_once(block_ms=None):
                pass
    except (TimeoutError, asyncpg.PostgresError, OSError, redis.RedisError) as exc:
        _log.warning(
            "ledger not fully flushed at shutdown; it stays queued", error=type(exc).__name__
        )


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def run_drainer(
    ledger: Ledger,
    *,
    idle_seconds: float = 0.5,
    retry_seconds: float = 2.0,
    linger_seconds: float = 0.2,
) -> None:
    """Forever: drain; on a database or Redis error, log, wait and try again (nothing is lost).

    After a batch smaller than the maximum it lingers a moment so that the next one is
    bigger: one transaction and a few Redis calls per batch, not per request. The entries
    are durable meanwhile (in the stream or the journal), so this delays rows, not safety.
    """
    while True:
        try:
            moved = await ledger.drain_once()
            if moved == 0:
                await asyncio.sleep(idle_seconds if isinstance(ledger, JournalLedger) else 0)
            elif moved < BATCH:
                await asyncio.sleep(linger_seconds)
        except asyncio.CancelledError:
            raise
        except (asyncpg.PostgresError, OSError, redis.RedisError, TimeoutError) as exc:
            # redis-py turns a cancelled blocking read into a connection error: stop, then.
            if _being_cancelled():
                raise asyncio.CancelledError from exc
            _log.warning("ledger drain failed; will retry", error=type(exc).__name__)
            await asyncio.sleep(retry_seconds)
