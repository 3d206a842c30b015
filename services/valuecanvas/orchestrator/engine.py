"""The durable workflow: one DBOS workflow function runs any definition.

A run is checkpointed in Postgres by DBOS at every step. After a crash (``kill -9``), the
restarted process resumes each run from its last completed step: completed steps are
replayed from their recorded output, not called again. A step that was in flight is called
again with the same ``Idempotency-Key`` (the run's id and the step's id), and the agent
returns what it stored the first time, so no agent runs twice for one step.

The definition's waves (definitions.py) run in order; a wave's steps run together. Inputs
are resolved here, in the workflow, from recorded outputs only, so a replay resolves the
same inputs.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import aiohttp
from dbos import DBOS, SetWorkflowID
from dbos._error import DBOSMaxStepRetriesExceeded, DBOSStepTimeoutError

from valuecanvas.core.identity import Identity
from valuecanvas.core.logging import get_logger
from valuecanvas.orchestrator import progress, repository
from valuecanvas.orchestrator.definitions import StepSpec, stored
from valuecanvas.orchestrator.mapping import MappingError, resolve
from valuecanvas.orchestrator.runtime import OrchestratorRuntime, current
from valuecanvas.orchestrator.webhooks import deliver_all

WORKFLOW_NAME = "valuecanvas.workflow"
_log = get_logger("valuecanvas.orchestrator.engine")


class TransientStepError(Exception):
    """The agent did not answer, or answered 5xx or 429: worth another attempt."""


class StepRejectedError(Exception):
    """The agent refused the input (4xx): another attempt would get the same answer."""


class StepFailedError(Exception):
    """A step that ended the run: which, and why."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"step {step}: {reason}")
        self.step, self.reason = step, reason


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _should_retry(error: BaseException) -> bool:
    return isinstance(error, (TransientStepError, DBOSStepTimeoutError))


def _problem_text(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return raw[:300].decode(errors="replace")
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("title") or ""
        param = body.get("param")
        return f"{detail} ({param})" if param else str(detail)
    return str(body)[:300]


async def call_agent(
    job: dict[str, Any], step: str, agent: str, body: dict[str, Any]
) -> dict[str, Any]:
    """One attempt at a step: POST the agent's /v1/run as the run's user, with the step's
    idempotency key. Returns the step's record (progress.py): the agent's output, the
    attempt, the times, whether the agent replayed it. DBOS checkpoints that record, and it
    is the step's progress too: nothing else is written when a step succeeds. A failed
    attempt is written to the run's row, so that people see a step retrying, and why."""
    runtime = current()
    organization, execution = UUID(job["organization_id"]), UUID(job["execution_id"])
    status = DBOS.step_status
    attempt = 1 + ((status.current_attempt or 0) if status is not None else 0)
    pool = runtime.state.pool
    # The first attempt's start was written with its wave's (run_workflow); a later one is
    # written here, and finds a run cancelled between attempts.
    if attempt > 1 and not await repository.step_progress(
        pool, organization, execution, step,
        {"status": "running", "agent": agent, "attempts": attempt, "started_at": _now()},
    ):  # fmt: skip
        raise StepRejectedError("the run was cancelled")  # no further attempt
    identity = Identity(
        user_id=UUID(job["user_id"]), organization_id=organization, role="authenticated",
        via="internal_token",
    )  # fmt: skip
    headers = {
        "Authorization": f"Bearer {runtime.state.internal_tokens.mint(identity)}",
        "Idempotency-Key": f"{execution}:{step}",
        "Workflow-Execution-Id": str(execution),
    }
    started, started_at = time.perf_counter(), _now()
    timeout = aiohttp.ClientTimeout(total=runtime.settings.orchestrator_step_timeout_seconds)
    try:
        async with runtime.agents.post(
            f"{runtime.agent_url(agent)}/v1/run", json=body, headers=headers, timeout=timeout
        ) as response:
            code, raw = response.status, await response.read()
            replayed = response.headers.get("Idempotent-Replayed") == "true"
    except (aiohttp.ClientError, TimeoutError) as exc:
        error = f"{agent} did not answer: {type(exc).__name__}"
        await repository.step_progress(pool, organization, execution, step, {"error": error})
        raise TransientStepError(error) from None
    duration_ms = round((time.perf_counter() - started) * 1000)
    if code >= 500 or code in (408, 429):
        error = f"{agent} answered {code}: {_problem_text(raw)}"
        await repository.step_progress(pool, organization, execution, step, {"error": error})
        raise TransientStepError(error)
    if code != 200:
        error = f"{agent} refused the input ({code}): {_problem_text(raw)}"
        await repository.step_progress(
            pool, organization, execution, step,
            {"status": "failed", "error": error, "finished_at": _now()},
        )  # fmt: skip
        raise StepRejectedError(error)
    return {
        "output": json.loads(raw), "attempts": attempt, "started_at": started_at,
        "finished_at": _now(), "duration_ms": duration_ms, "replayed": replayed,
    }  # fmt: skip


async def _run_step(job: dict[str, Any], step: StepSpec, body: dict[str, Any]) -> dict[str, Any]:
    """The step, durably: its record (call_agent's), replayed from the checkpoint if it has
    one."""
    settings = current().settings
    try:
        record: dict[str, Any] = await DBOS.run_step_async(
            {
                "name": f"step:{step.id}",
                "retries_allowed": True,
                "max_attempts": step.attempts or settings.orchestrator_step_attempts,
                "interval_seconds": settings.orchestrator_retry_interval_seconds,
                "backoff_rate": 2.0,
                "should_retry": _should_retry,
                "timeout_seconds": step.timeout_seconds
                or settings.orchestrator_step_timeout_seconds + 5,
                "preemptible": True,
            },
            call_agent, job, step.id, step.agent, body,
        )  # fmt: skip
    except (TransientStepError, StepRejectedError) as exc:
        raise StepFailedError(step.id, str(exc)) from None
    except DBOSStepTimeoutError:
        raise StepFailedError(
            step.id, f"{step.agent} took longer than the step's timeout"
        ) from None
    except DBOSMaxStepRetriesExceeded as exc:  # every attempt failed: the last one's reason
        last = exc.errors[-1] if exc.errors else exc
        reason = (
            f"{step.agent} took longer than the step's timeout"
            if isinstance(last, DBOSStepTimeoutError)
            else str(last)
        )
        raise StepFailedError(step.id, f"{reason} (after {len(exc.errors)} attempts)") from None
    return record


@DBOS.workflow(name=WORKFLOW_NAME)
async def run_workflow(job: dict[str, Any]) -> dict[str, Any]:
    """Run ``job["definition"]`` for ``job["input"]``. ``job`` also names the run
    (``execution_id``, the DBOS workflow id too), its organization, its user, the definition's
    name and the value case, if any."""
    spec = stored(job["definition"])
    documents: dict[str, Any] = {"input": job["input"]}
    records: dict[str, dict[str, Any]] = {}  # the steps that succeeded: their progress
    organization, execution = UUID(job["organization_id"]), UUID(job["execution_id"])
    # A run accepted while the engine was not up is marked running now (not a checkpoint:
    # written again on a replay, to the same effect); others were accepted running. Its
    # steps' progress is the engine's records from here on (progress.py).
    if job.get("pending", True):
        await repository.run_started(current().state.pool, organization, execution)
    try:
        for wave in spec.levels():
            bodies = {}
            for step in wave:
                try:
                    bodies[step.id] = resolve(step.input, documents)
                except MappingError as exc:
                    raise StepFailedError(step.id, f"its input: {exc}") from None
            # DBOS refuses to start a cancelled run's steps.
            outcomes = await asyncio.gather(
                *(_run_step(job, step, bodies[step.id]) for step in wave), return_exceptions=True
            )
            for step, outcome in zip(wave, outcomes, strict=True):
                if not isinstance(outcome, BaseException):
                    record = progress.as_record(outcome)
                    records[step.id] = progress.succeeded(record)
                    documents[step.id] = record["output"]
                    documents[f"{step.id}.input"] = bodies[step.id]
            failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
            if failures:  # the wave's first failure, in the definition's order
                raise failures[0]
        output = (
            resolve(spec.result, documents)
            if spec.result is not None
            else {step.id: documents[step.id] for step in spec.steps}
        )
    except StepFailedError as failure:
        await _finish(job, "failed", {"failed_step": failure.step, "error": failure.reason},
                      steps=records, error=f"step {failure.step}: {failure.reason}",
                      failed_step=failure.step, step_error=failure.reason)  # fmt: skip
        return {"status": "failed", "failed_step": failure.step, "error": failure.reason}
    except MappingError as exc:
        await _finish(job, "failed", {"failed_step": None, "error": f"result: {exc}"},
                      steps=records, error=f"result: {exc}")  # fmt: skip
        return {"status": "failed", "error": f"result: {exc}"}
    # The run's verdict: the last integrity check's (none without one).
    checks = [documents[step.id] for step in spec.steps if step.agent == "integrity"]
    verdict = checks[-1].get("verdict") if checks else None
    await _finish(
        job, "completed", {"verdict": verdict}, steps=records, output=output, verdict=verdict
    )
    return {"status": "succeeded", "verdict": verdict}


async def _finish(
    job: dict[str, Any], outcome: str, details: dict[str, Any], **recorded: Any
) -> None:
    """One checkpoint for the run's end (its status, its steps' final progress, the value
    case's, the webhooks each event goes to), then the deliveries, each its own durable
    step."""
    events = [f"workflow.{outcome}"] + (
        [f"value_case.{outcome}"] if job.get("value_case_id") else []
    )
    end = await DBOS.run_step_async(
        {"name": f"finish:{outcome}"}, repository.finish, current().state.pool,
        UUID(job["organization_id"]), UUID(job["execution_id"]),
        status="succeeded" if outcome == "completed" else "failed", user=UUID(job["user_id"]),
        events=events, **recorded,
    )  # fmt: skip
    if end["recorded"]:
        await deliver_all(job, outcome, details, end)


def job_for(
    execution: UUID, organization: UUID, user: UUID, name: str, definition: dict[str, Any],
    run_input: dict[str, Any], value_case: UUID | None, *, pending: bool,
) -> dict[str, Any]:  # fmt: skip
    """The workflow's input: everything it needs, so that a resumed run needs nothing else
    (``pending``: its row still says so, and the run marks it running)."""
    return {
        "execution_id": str(execution), "organization_id": str(organization), "user_id": str(user),
        "definition_name": name, "definition": definition, "input": run_input,
        "value_case_id": None if value_case is None else str(value_case), "pending": pending,
    }  # fmt: skip


async def launch(job: dict[str, Any]) -> None:
    """Start the durable run (its id is the execution's: starting it twice runs it once)."""
    with SetWorkflowID(job["execution_id"]):
        await DBOS.start_workflow_async(run_workflow, job)


async def resume_unstarted(runtime: OrchestratorRuntime) -> None:
    """Start the runs recorded but never started: those accepted while the engine was not
    launched yet (pending), or whose process stopped between recording and starting them.
    The engine resumes the others itself."""
    rows = await repository.unfinished(runtime.state.pool)
    for batch in (rows[start : start + 500] for start in range(0, len(rows), 500)):
        known = {
            found.workflow_id
            for found in await DBOS.list_workflows_async(
                workflow_ids=[str(row["id"]) for row in batch], load_input=False,
                load_output=False,
            )
        }  # fmt: skip
        for row in batch:
            if str(row["id"]) not in known:
                await launch(job_for(row["id"], row["organization_id"], row["started_by"],
                                     row["name"], row["definition"], row["input"],
                                     row["value_case_id"], pending=row["status"] == "pending"))  # fmt: skip
