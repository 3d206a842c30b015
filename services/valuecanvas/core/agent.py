"""What every agent shares: ``POST /v1/run`` with its own input and output models, run once
per idempotency key, and one ``agent_audit_log`` row per invocation.

- The caller is who their token says (the gateway's or the orchestrator's internal token,
  or a user's own). The agent writes its audit row as itself: an internal identity for
  the same user and organization with the agent as actor, which is the only kind of caller
  the table's policy lets append (private.acting_agent()).
- ``Idempotency-Key`` (optional; the orchestrator sends the workflow and step ids): a key
  seen before in the organization for this agent returns the stored output
  (``Idempotent-Replayed: true``) without running again; the same key with other inputs is
  a 409. The lookup, the run and the row happen under one advisory lock on the key, so two
  concurrent calls with it run once.
- The inputs are hashed (sha256 of their canonical JSON) and the hash stored, with the
  output, the duration, and the tokens and cost of any LLM calls.
- ``Workflow-Execution-Id`` (optional; the orchestrator sends it): the run the invocation
  belongs to, stored in the row. It must be a run the caller's organization can see.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel

from valuecanvas.core.auth import UNAUTHORIZED, Caller, require_organization
from valuecanvas.core.db import Connection, caller_transaction
from valuecanvas.core.errors import ProblemError, error_doc
from valuecanvas.core.identity import Identity
from valuecanvas.core.state import get_state

InputT = TypeVar("InputT", bound=BaseModel)
OutputT = TypeVar("OutputT", bound=BaseModel)
IDEMPOTENCY_KEY = r"^[A-Za-z0-9._:-]{1,200}$"


@dataclass
class RunContext:
    """What a run may use and report: the caller, and the LLM usage it accumulates."""

    caller: Identity
    request: Request
    # The run's transaction, as the agent for the caller's user and organization: what it
    # reads, row-level security lets that organization's members read.
    connection: Connection
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    model: str | None = None  # the model that answered, when the run asked one
    notes: dict[str, Any] = field(default_factory=dict)


class AgentRunError(Exception):
    """A run that cannot produce its output: a 422 naming the field at fault."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name, self.message = field_name, message


@dataclass(frozen=True)
class Agent(Generic[InputT, OutputT]):
    name: str
    input_model: type[InputT]
    output_model: type[OutputT]
    run: Callable[[RunContext, InputT], Awaitable[OutputT]]
    summary: str
    verdict: Callable[[OutputT], str | None] = lambda _: None


def inputs_hash(body: BaseModel) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def as_agent(caller: Identity, agent: str) -> Identity:
    """The caller's user and organization, with the agent acting for them."""
    return replace(caller, via="internal_token", actor=agent)


async def _stored(connection: Connection, agent: str, key: str) -> Any:
    return await connection.fetchrow(
        """select output, inputs_hash from public.agent_audit_log
           where organization_id = (select private.acting_organization_id())
             and agent = $1 and idempotency_key = $2""",
        agent,
        key,
    )


async def _record(
    connection: Connection,
    agent: str,
    caller: Identity,
    execution: UUID | None,
    key: str | None,
    digest: str,
    output: dict[str, Any],
    context: RunContext,
    duration_ms: int,
    verdict: str | None,
) -> None:
    await connection.execute(
        """insert into public.agent_audit_log
             (organization_id, agent, action, user_id, input_summary, output, verdict,
              idempotency_key, inputs_hash, prompt_tokens, completion_tokens, cost_usd,
              duration_ms, workflow_execution_id, model)
           values ($1, $2, 'run', $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, $12, $13, $14)""",
        caller.organization_id,
        agent,
        caller.user_id,
        f"inputs sha256 {digest}",
        json.dumps(output),
        verdict,
        key,
        digest,
        context.prompt_tokens,
        context.completion_tokens,
        context.cost_usd,
        duration_ms,
        execution,
        context.model,
    )


def agent_router(agent: Agent[InputT, OutputT]) -> APIRouter:
    router = APIRouter(tags=["agent"])
    input_model, output_model = agent.input_model, agent.output_model

    async def run(
        request: Request,
        response: Response,
        caller: Caller,
        body: input_model,  # type: ignore[valid-type]
        idempotency_key: Annotated[
            str | None,
            Header(pattern=IDEMPOTENCY_KEY, description="the same key returns the stored result"),
        ] = None,
        workflow_execution_id: Annotated[
            UUID | None, Header(description="the workflow run this invocation is a step of")
        ] = None,
    ) -> dict[str, Any]:
        require_organization(caller)
        state = get_state(request)
        acting = as_agent(caller, agent.name)
        digest = inputs_hash(body)
        async with caller_transaction(state.pool, acting, metrics=state.metrics) as connection:
            if await connection.fetchval("select private.acting_organization_id()") is None:
                raise ProblemError(
                    403, "not_a_member", "you are not an active member of the token's organization"
                )
            if workflow_execution_id is not None and not await connection.fetchval(
                "select exists (select from public.workflow_executions where id = $1)",
                workflow_execution_id,
            ):
                raise ProblemError(
                    422, "unknown_workflow", "no such workflow run in your organization",
                    param="Workflow-Execution-Id",
                )  # fmt: skip
            if idempotency_key is not None:
                await connection.execute(
                    "select pg_advisory_xact_lock(hashtextextended($1, 0))",
                    f"agent-run:{caller.organization_id}:{agent.name}:{idempotency_key}",
                )
                stored = await _stored(connection, agent.name, idempotency_key)
                if stored is not None:
                    if stored["inputs_hash"] != digest:
                        raise ProblemError(
                            409, "idempotency_key_reused",
                            "this Idempotency-Key was used with other inputs",
                            param="Idempotency-Key",
                        )  # fmt: skip
                    response.headers["Idempotent-Replayed"] = "true"
                    replayed: dict[str, Any] = json.loads(stored["output"])
                    return replayed
            context = RunContext(caller=caller, request=request, connection=connection)
            started = time.perf_counter()
            try:
                result = await agent.run(context, body)
            except AgentRunError as exc:
                raise ProblemError(
                    422, "impossible_input", exc.message, param=exc.field_name
                ) from None
            # Postgres text cannot hold NUL: a NUL quoted back from the inputs is replaced
            # (U+FFFD) in what is stored and answered alike, so a replay answers the same.
            output: dict[str, Any] = json.loads(
                output_model.model_validate(result).model_dump_json().replace("\\u0000", "\ufffd")
            )
            await _record(
                connection, agent.name, caller, workflow_execution_id, idempotency_key, digest,
                output, context,
                round((time.perf_counter() - started) * 1000), agent.verdict(result),
            )  # fmt: skip
        return output

    run.__annotations__ = {**run.__annotations__, "body": input_model}
    router.add_api_route(
        "/v1/run",
        run,
        methods=["POST"],
        response_model=output_model,
        summary=agent.summary,
        responses={
            **UNAUTHORIZED,
            403: error_doc("the token names no organization, or one you are not active in"),
            409: error_doc("the Idempotency-Key was used with other inputs"),
            422: error_doc("a field is invalid, or the inputs cannot make a result (named)"),
        },
    )
    return router
