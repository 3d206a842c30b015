"""Workflow definitions: the built-in ones, and an organization's own (its admins add them;
a new one under an existing name is its next version)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from fastapi import APIRouter, Request, status

from valuecanvas.core.auth import UNAUTHORIZED, Caller, require_organization
from valuecanvas.core.db import caller_transaction
from valuecanvas.core.errors import ProblemError, error_doc
from valuecanvas.core.state import get_state
from valuecanvas.orchestrator import repository
from valuecanvas.orchestrator.definitions import builtin_definitions
from valuecanvas.orchestrator.schemas import Definition, DefinitionCreate

router = APIRouter(tags=["workflow-definitions"])


@router.post(
    "/v1/workflow-definitions",
    status_code=status.HTTP_201_CREATED,
    response_model=Definition,
    responses={
        **UNAUTHORIZED,
        403: error_doc("only the organization's owners and admins add definitions"),
        409: error_doc("the name is a built-in definition's"),
        422: error_doc("the definition is not a DAG of known agents (the problem is named)"),
    },
)
async def create_definition(
    request: Request, caller: Caller, body: DefinitionCreate
) -> dict[str, Any]:
    """Add a definition (checked: known agents, known steps, no cycle, reads only of steps
    waited for). Runs start it by name: POST /v1/workflows."""
    organization, user = require_organization(caller)
    if body.name in builtin_definitions():
        raise ProblemError(409, "builtin_definition", f"{body.name} is a built-in definition",
                           param="name")  # fmt: skip
    state = get_state(request)
    try:
        async with caller_transaction(state.pool, caller, metrics=state.metrics) as connection:
            row = await repository.create_definition(
                connection, organization, body.name,
                body.definition.model_dump(mode="json", exclude_none=True), user,
            )  # fmt: skip
    except asyncpg.InsufficientPrivilegeError:
        raise ProblemError(
            403, "forbidden", "only the organization's owners and admins add definitions"
        ) from None
    return {**dict(row), "definition": json.loads(row["definition"])}
