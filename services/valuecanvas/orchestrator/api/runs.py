"""Runs: starting one (shared by value cases, reviews and named definitions), reading it,
following it (server-sent events), cancelling it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
from dbos import DBOS
from fastapi import APIRouter, Request, Response, status
from fastapi.responses import StreamingResponse

from valuecanvas.core.auth import UNAUTHORIZED, Caller, require_organization
from valuecanvas.core.db import Connection, caller_transaction
from valuecanvas.core.errors import ProblemError, error_doc
from valuecanvas.core.identity import Identity
from valuecanvas.core.state import get_state
from valuecanvas.orchestrator import progress, repository
from valuecanvas.orchestrator.definitions import builtin_definitions, stored
from valuecanvas.orchestrator.engine import job_for, launch
from valuecanvas.orchestrator.runtime import runtime_of
from valuecanvas.orchestrator.schemas import Started, Workflow, WorkflowCreate

router = APIRouter(tags=["workflows"])
NOT_FOUND = error_doc("no such workflow in your organization")
MEMBERS = error_doc("the token names no organization, or you are not a member (viewers read only)")


async def writer_in(connection: Connection, caller: Identity) -> UUID:
    """The caller's organization, if they may start runs in it (members, not viewers)."""
    organization, _ = require_organization(caller)
    if await connection.fetchval("select private.acting_writer_organization_id()") is None:
        raise ProblemError(
            403, "forbidden", "only active members (not viewers) of the organization start runs"
        )
    return organization


@dataclass(frozen=True)
class StartedRun:
    execution: UUID
    case: UUID | None
    status: str  # as recorded: running, or pending until the engine launches


async def start_run(
    request: Request, caller: Identity, name: str, run_input: dict[str, Any], *,
    value_case: dict[str, Any] | None = None,
) -> StartedRun:  # fmt: skip
    """Record the run (and its value case) as the caller, then start it. A definition is
    the organization's own of that name, else the built-in one."""
    state = get_state(request)
    assert caller.user_id is not None
    # Started right after the commit when the engine is up (the row says running from the
    # start); else pending, and resume_unstarted starts it once the engine launches.
    starting = runtime_of(request).engine_ready.is_set()
    try:
        async with caller_transaction(state.pool, caller, metrics=state.metrics) as connection:
            organization = await writer_in(connection, caller)
            case = None
            if value_case is not None:
                case = await repository.create_value_case(
                    connection, organization, value_case["name"], value_case["account_name"],
                    run_input,
                )  # fmt: skip
            found = await repository.definition_by_name(connection, name)
            if found is not None:
                definition_id, definition = found["id"], json.loads(found["definition"])
            elif name in builtin_definitions():
                definition = builtin_definitions()[name].model_dump(mode="json")
                definition_id = await repository.ensure_builtin_definition(
                    connection, organization, name, definition
                )
            else:
                raise ProblemError(404, "unknown_definition", f"no workflow definition {name!r}",
                                   param="definition")  # fmt: skip
            spec = stored(definition)
            execution = await repository.create_execution(
                connection, organization, definition_id, run_input, caller.user_id, case,
                [step.id for step in spec.steps], starting=starting,
            )  # fmt: skip
    except asyncpg.InsufficientPrivilegeError:
        raise ProblemError(403, "forbidden", "your role cannot start runs") from None
    # Checked again after the commit: a run recorded pending while the engine launched is
    # started here or by resume_unstarted (which runs once it has), whichever sees it first
    # (its id is the workflow's: starting it twice runs it once).
    if starting or runtime_of(request).engine_ready.is_set():
        await launch(job_for(execution, organization, caller.user_id, name, definition,
                             run_input, case, pending=not starting))  # fmt: skip
    return StartedRun(execution, case, "running" if starting else "pending")


def accepted(response: Response, started: StartedRun) -> dict[str, Any]:
    response.headers["Location"] = f"/v1/workflows/{started.execution}"
    return {"workflow_id": started.execution, "value_case_id": started.case,
            "status": started.status}  # fmt: skip


@router.post(
    "/v1/workflows",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Started,
    responses={**UNAUTHORIZED, 403: MEMBERS, 404: error_doc("no definition of that name")},
)
async def start_workflow(
    request: Request, response: Response, caller: Caller, body: WorkflowCreate
) -> dict[str, Any]:
    """Run a definition (built-in, or your organization's own) on an input. Each step's
    input is made from it as the definition says; a step that cannot use it fails the run,
    named."""
    return accepted(response, await start_run(request, caller, body.definition, body.input))


async def read_one(
    request: Request, caller: Identity, fetch: Callable[[Connection, UUID], Awaitable[Any]],
    key: UUID, code: str, what: str,
) -> dict[str, Any]:  # fmt: skip
    """One row as the caller sees it (row-level security), or a 404 naming what."""
    state = get_state(request)
    async with caller_transaction(state.pool, caller, metrics=state.metrics) as connection:
        found: dict[str, Any] | None = await fetch(connection, key)
    if found is None:
        raise ProblemError(404, code, f"no such {what} in your organization")
    return found


async def _read(request: Request, caller: Identity, workflow_id: UUID) -> dict[str, Any]:
    """The run as the caller may see it, its steps from its row and, while it goes on, the
    engine's records (progress.py)."""
    found = await read_one(request, caller, repository.execution, workflow_id,
                           "unknown_workflow", "workflow")  # fmt: skip
    notes, spec = found.pop("steps"), found.pop("spec")
    records = {}
    if progress.is_live(found["status"]) and runtime_of(request).engine_ready.is_set():
        records = await progress.engine_records(str(workflow_id))
    found["steps"] = progress.view(spec["steps"], notes, records, run_status=found["status"],
                                   run_started_at=found["started_at"])  # fmt: skip
    return found


@router.get(
    "/v1/workflows/{workflow_id}",
    response_model=Workflow,
    responses={**UNAUTHORIZED, 404: NOT_FOUND},
)
async def get_workflow(request: Request, caller: Caller, workflow_id: UUID) -> dict[str, Any]:
    """A run's status, each step's progress, and its output once it succeeded."""
    return await _read(request, caller, workflow_id)


@router.post(
    "/v1/workflows/{workflow_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Workflow,
    responses={
        **UNAUTHORIZED,
        403: error_doc("only the run's starter or an admin cancels it"),
        404: NOT_FOUND,
        409: error_doc("the run has already ended"),
    },
)
async def cancel_workflow(request: Request, caller: Caller, workflow_id: UUID) -> dict[str, Any]:
    """Stop a run: no further step starts (a step already running finishes, unused)."""
    state = get_state(request)
    found = await _read(request, caller, workflow_id)
    async with caller_transaction(state.pool, caller, metrics=state.metrics) as connection:
        before = await repository.request_cancel(connection, workflow_id)
    if before is None:
        raise ProblemError(403, "forbidden", "only the run's starter or an admin cancels it")
    if before in repository.FINISHED:
        raise ProblemError(409, "already_ended", f"the run has already ended ({before})")
    if runtime_of(request).engine_ready.is_set():  # else it never starts (resume skips it)
        await DBOS.cancel_workflow_async(str(workflow_id))
    assert caller.organization_id is not None
    await repository.cancel_value_case(state.pool, caller.organization_id, workflow_id)
    return {**found, **await _read(request, caller, workflow_id)}


_EVENTS_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "server-sent events: `progress` (the run, as GET answers it) on every "
        "change, then `end` once it has ended",
        # Each event (OpenAPI 3.2's way): its name, and as data the run in JSON, as
        # GET /v1/workflows/{id} answers it.
        "content": {
            "text/event-stream": {
                "itemSchema": {
                    "type": "object",
                    "properties": {
                        "event": {"type": "string", "enum": ["progress", "end"]},
                        "data": {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": {"$ref": "#/components/schemas/Workflow"},
                        },
                    },
                    "required": ["event", "data"],
                }
            }
        },
    }
}


@router.get(
    "/v1/workflows/{workflow_id}/events",
    response_class=StreamingResponse,
    responses={**_EVENTS_DOC, **UNAUTHORIZED, 404: NOT_FOUND},
)
async def workflow_events(request: Request, caller: Caller, workflow_id: UUID) -> StreamingResponse:
    """Follow a run as server-sent events (or poll GET /v1/workflows/{id})."""
    first = await _read(request, caller, workflow_id)
    interval = runtime_of(request).settings.orchestrator_events_poll_seconds

    def event(name: str, run: dict[str, Any]) -> bytes:
        payload = Workflow.model_validate(run).model_dump_json()
        return f"event: {name}\ndata: {payload}\n\n".encode()

    async def stream() -> AsyncIterator[bytes]:
        run = first
        yield event("progress", run)
        while run["status"] not in repository.FINISHED:
            await asyncio.sleep(interval)
            try:
                latest = await _read(request, caller, workflow_id)
            except ProblemError:  # deleted meanwhile (or the caller's access ended)
                return
            if latest != run:  # the row, or a step's record in the engine
                run = latest
                yield event("progress", run)
        yield event("end", run)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )
