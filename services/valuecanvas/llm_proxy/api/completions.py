"""POST /v1/chat/completions (plain; streamed ones are api/streaming.py's) and
GET /v1/models. The caller's user and organization come only from the verified token (a
user JWT, or an internal token carrying them), never from the request body."""

from __future__ import annotations

import time
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from valuecanvas.core.auth import UNAUTHORIZED, Caller
from valuecanvas.core.body import BodyError
from valuecanvas.core.errors import error_doc, error_response
from valuecanvas.core.identity import Identity
from valuecanvas.core.logging import get_logger
from valuecanvas.core.ratelimit import Decision, RateLimiterUnavailableError
from valuecanvas.core.requestid import current_request_id
from valuecanvas.llm_proxy.api.outcomes import (
    Ids,
    all_providers_failed,
    body_error_response,
    cost_headers,
    ledger_entry_for,
    proxy_headers,
    rate_headers,
    read_request,
    record,
    refused_by_provider,
    token_usage,
)
from valuecanvas.llm_proxy.api.streaming import stream
from valuecanvas.llm_proxy.offline import offline_completion
from valuecanvas.llm_proxy.runtime import LlmRuntime, runtime_of
from valuecanvas.llm_proxy.schemas import ChatCompletionRequest, ModelList, inline_schema
from valuecanvas.llm_proxy.upstream import AllProvidersFailedError, ClientRequestError

router = APIRouter(tags=["llm"])
_log = get_logger("valuecanvas.llm_proxy.api")


@router.get("/v1/models", summary="The logical models this proxy serves", responses=UNAUTHORIZED)
async def list_models(request: Request, caller: Caller) -> ModelList:
    return ModelList.model_validate(
        {
            "object": "list",
            "data": [
                {"id": model, "object": "model", "created": 0, "owned_by": "valuecanvas"}
                for model in runtime_of(request).models()
            ],
        }
    )


@router.post(
    "/v1/chat/completions",
    summary="OpenAI-compatible chat completions, plain or streamed",
    # The body is read and validated by the handler (it is served past FastAPI's routing,
    # see HotPathMiddleware), so its schema is given here rather than by a parameter.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(ChatCompletionRequest)}},
        }
    },
    responses={
        200: {
            "description": "the completion (JSON), or with stream=true its chunks (SSE)",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                # Each server-sent event: its data is a chat.completion.chunk as JSON, an
                # error object (the stream broke after the first byte), or [DONE].
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "required": ["data"],
                        "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
                    }
                },
            },
        },
        400: error_doc("malformed JSON, or a field the schema refuses (named in param)"),
        **UNAUTHORIZED,
        404: error_doc("unknown model"),
        413: error_doc("body over the size cap"),
        429: error_doc("a rate limit; see Retry-After"),
        502: error_doc("every provider failed"),
        503: error_doc("the rate limiter is unreachable"),
    },
)
async def chat_completions(request: Request, caller: Caller) -> Response:
    runtime = runtime_of(request)
    started = request.scope.get("state", {}).get("request_started", time.perf_counter())
    ids = Ids(request=current_request_id() or "unknown")
    if runtime.offline:
        structlog.contextvars.bind_contextvars(offline=True)  # on every line of this request
    try:
        body = await read_request(request, runtime)
    except BodyError as error:
        return body_error_response(error)
    if runtime.log_bodies:
        _log.info("request body", body=body)

    user_key = str(caller.user_id) if caller.user_id else f"service:{caller.actor or caller.role}"
    try:
        decision = await runtime.limiter.check(
            user_key, caller.organization_id, str(ids.completion)
        )
    except RateLimiterUnavailableError as error:
        runtime.metrics.limiter_unavailable.inc()
        _log.error("rate limiter unavailable; refusing", error=str(error))
        return error_response(503, "service_unavailable", "rate_limiter_unavailable",
                              "rate limits cannot be checked right now; try again shortly",
                              headers={"Retry-After": "5"})  # fmt: skip
    if not decision.admitted:
        runtime.metrics.refusals.labels(decision.scope).inc()
        return error_response(
            429, "rate_limit_error", f"{decision.scope}_rate_limit_exceeded",
            f"the {decision.scope} limit of {decision.limit} requests per hour is reached",
            headers={**rate_headers(decision), "Retry-After": str(decision.reset_seconds)},
        )  # fmt: skip

    payload = {
        key: value for key, value in body.items() if key not in ("user", "stream", "stream_options")
    }
    if body.get("stream"):
        return await stream(request, runtime, caller, body, payload, decision, started, ids)
    return await complete(request, runtime, caller, body, payload, decision, started, ids)


async def complete(
    request: Request, runtime: LlmRuntime, caller: Identity, body: dict[str, Any], payload: dict[str, Any],
    decision: Decision, started: float, ids: Ids,
) -> Response:  # fmt: skip
    logical, messages = body["model"], body["messages"]
    if runtime.offline:
        provider = runtime.providers[0]
        answer = offline_completion(ids.completion.hex, logical, messages)
        entry = ledger_entry_for(caller, ids, logical, provider, provider.models[logical], 1,
                       token_usage(answer, messages, ""), time.perf_counter() - started, "succeeded")  # fmt: skip
        await record(request, runtime, entry)
        overhead = time.perf_counter() - started
        return JSONResponse(
            answer,
            headers={
                **rate_headers(decision),
                **proxy_headers("offline", 1, overhead),
                **cost_headers(entry),
            },
        )
    try:
        completion = await runtime.upstream.complete(logical, payload)
    except ClientRequestError as error:
        return await refused_by_provider(
            request, runtime, caller, logical, error, decision, started, ids
        )
    except AllProvidersFailedError as error:
        return await all_providers_failed(
            request, runtime, caller, logical, error, decision, started, ids
        )
    attempts = completion.attempts
    text = "".join(
        str(choice.get("message", {}).get("content") or "")
        for choice in completion.body.get("choices", [])
    )
    entry = ledger_entry_for(caller, ids, logical, attempts.provider, attempts.provider_model, attempts.count,
                   token_usage(completion.body, messages, text), time.perf_counter() - started, "succeeded")  # fmt: skip
    await record(request, runtime, entry)
    if runtime.log_bodies:
        _log.info("response body", body=completion.body)
    overhead = time.perf_counter() - started - attempts.upstream_seconds - attempts.backoff_seconds
    assert attempts.provider is not None
    return JSONResponse(
        completion.body,
        headers={
            **rate_headers(decision),
            **proxy_headers(attempts.provider.name, attempts.count, overhead),
            **cost_headers(entry),
        },
    )
