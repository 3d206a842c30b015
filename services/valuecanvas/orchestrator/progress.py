"""A run's steps as people see them (GET /v1/workflows/{id}, and its events).

Nothing is written while a run's steps succeed: each step's durable record in the engine
(DBOS's checkpoint of what engine.call_agent returned) holds the agent's output, the
attempt that succeeded, its times and whether the agent replayed it, and that record is
the step's progress. The run's row (``workflow_executions.steps``) holds what the records
do not: a step's failed attempts while it retries (so a watcher sees it retrying, and
why), and once the run has ended, every step's last state, written with the run's end in
one transaction, so that a finished run reads from its row alone.

While a run goes on, a step is shown running when every step it needs has succeeded and
it has no record yet; it started when the last of those ended (the first wave: when the
run did).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from dbos import DBOS

RECORD_PREFIX = "step:"
_LIVE = ("running", "cancelled")  # a run whose steps' records are read from the engine


RECORD_KEYS = frozenset(
    {"output", "attempts", "started_at", "finished_at", "duration_ms", "replayed"}
)


def as_record(checkpointed: Mapping[str, Any]) -> Mapping[str, Any]:
    """A step's checkpointed value as a record. Runs checkpointed before records existed
    (their steps returned the agent's output itself) are resumed by the release after it:
    such a value is the output, of one attempt, its times unknown."""
    if checkpointed.keys() >= RECORD_KEYS:
        return checkpointed
    return {"output": checkpointed, "attempts": 1, "started_at": None, "finished_at": None,
            "duration_ms": None, "replayed": None}  # fmt: skip


def succeeded(record: Mapping[str, Any]) -> dict[str, Any]:
    """A step's progress from its record (the step's checkpointed return value)."""
    return {
        "status": "succeeded", "attempts": record["attempts"], "started_at": record["started_at"],
        "finished_at": record["finished_at"], "duration_ms": record["duration_ms"],
        "replayed": record["replayed"], "error": None,
    }  # fmt: skip


def _epoch(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def from_engine(infos: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The steps the engine has records of, by step id: succeeded (with their record), or
    failed for good (every attempt spent, or refused)."""
    found: dict[str, dict[str, Any]] = {}
    for info in infos:
        name = str(info.get("function_name") or "")
        if not name.startswith(RECORD_PREFIX):
            continue  # the run's finish, its webhook deliveries
        output = info.get("output")
        if info.get("error") is None and isinstance(output, Mapping):
            found[name.removeprefix(RECORD_PREFIX)] = succeeded(as_record(output))
        elif info.get("error") is not None:
            found[name.removeprefix(RECORD_PREFIX)] = {
                "status": "failed", "error": str(info["error"])[:1000],
                "finished_at": _epoch(info.get("completed_at_epoch_ms")),
            }  # fmt: skip
    return found


def view(
    steps: list[Mapping[str, Any]],
    notes: Mapping[str, Mapping[str, Any]],
    records: Mapping[str, Mapping[str, Any]],
    *,
    run_status: str,
    run_started_at: datetime | None,
) -> list[dict[str, Any]]:
    """The steps in the definition's order (``steps``: its step entries), each its row's
    entry (``notes``) with the engine's record (``records``) over it, and, for a run still
    going (or cancelled), the steps under way derived as the module says."""
    shown: dict[str, dict[str, Any]] = {}
    for step in steps:
        entry = {"status": "pending", "attempts": 0, **notes.get(step["id"], {})}
        entry |= records.get(step["id"], {})
        if run_status in _LIVE and entry["status"] in ("pending", "running"):
            needs = [shown[need] for need in step.get("needs", ()) if need in shown]
            if len(needs) == len(step.get("needs", ())) and all(
                need["status"] == "succeeded" for need in needs
            ):
                ends = [str(need["finished_at"]) for need in needs if need.get("finished_at")]
                began = max(ends) if ends else _iso(run_started_at)
                entry["status"] = "running" if run_status == "running" else "cancelled"
                entry["attempts"] = max(int(entry.get("attempts") or 0), 1)
                entry.setdefault("started_at", began)
            elif entry["status"] == "running":
                entry["status"] = "pending" if run_status == "running" else "cancelled"
        shown[step["id"]] = {"id": step["id"], "agent": step["agent"], **entry}
    return [shown[step["id"]] for step in steps]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


async def engine_records(execution_id: str) -> dict[str, dict[str, Any]]:
    """The run's step records in the engine (none for a run it has not started)."""
    return from_engine(await DBOS.list_workflow_steps_async(execution_id))


def is_live(run_status: str) -> bool:
    return run_status in _LIVE
