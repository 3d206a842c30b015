"""The llm-proxy's OpenAI-compatible API: /v1/chat/completions, /v1/models, /v1/usage.

The caller's user and organization come only from the verified token (a user JWT, or an
internal token carrying them), never from the request body.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BeforeValidator, ValidationError

from valuecanvas.core.app import UNAUTHORIZED, Caller, error_doc, error_response, get_state
from valuecanvas.core.body import BodyError, read_json_object
from valuecanvas.core.db import caller_transaction
from valuecanvas.core.identity import Identity
from valuecanvas.core.logging import get_logger
from valuecanvas.core.middleware import add_log_fields
from valuecanvas.core.requestid import current_request_id
from valuecanvas.llm.config import Provider
from valuecanvas.llm.ledger import LedgerEntry, insert_entries, to_json
from valuecanvas.llm.offline import estimate_tokens, offline_chunks, offline_completion, prompt_text
from valuecanvas.llm.ratelimit import Decision, RateLimiterUnavailableError
from valuecanvas.llm.runtime import LlmRuntime
from valuecanvas.llm.schemas import (
    ChatCompletionRequest,
    ModelList,
    UsageReport,
    inline_schema,
    money,
)
from valuecanvas.llm.upstream import (
    DONE,
    AllProvidersFailedError,
    Attempts,
    ClientRequestError,
    UpstreamError,
)

router = APIRouter(tags=["llm"])
_log = get_logger("valuecanvas.llm.api")


def runtime_of(request: Request) -> LlmRuntime:
    runtime: LlmRuntime = get_state(request).extension
    return runtime


def body_error_response(error: BodyError) -> JSONResponse:
    return error_response(
        error.status, "invalid_request_error", error.code, error.message, param=error.param
    )


async def read_request(request: Request, runtime: LlmRuntime) -> dict[str, Any]:
    """The body as a JSON object that :class:`ChatCompletionRequest` accepts, naming a known
    model; :class:`BodyError` (a 4xx naming the field) otherwise. The dict itself is
    returned, so fields the proxy does not interpret reach the provider as they came."""
    body = await read_json_object(request, runtime.max_body_bytes)
    try:
        ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise BodyError(400, "invalid_field", f"{field!r}: {first['msg']}", field) from None
    model = body["model"]
    if model not in runtime.models():
        known = ", ".join(runtime.models())
        raise BodyError(
            404, "model_not_found", f"model {model!r} does not exist; known: {known}", "model"
        )
    return body


def rate_headers(decision: Decision) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(max(0, decision.remaining)),
        "X-RateLimit-Reset": str(decision.reset_seconds),
    }


def proxy_headers(provider: str, attempts: int, overhead_seconds: float) -> dict[str, str]:
    return {
        "X-ValueCanvas-Provider": provider,
        "X-ValueCanvas-Attempts": str(attempts),
        "X-ValueCanvas-Overhead-Ms": f"{max(0.0, overhead_seconds) * 1000:.2f}",
    }


def _usage(
    body: dict[str, Any], messages: list[Any], completion_text: str
) -> tuple[int, int, bool]:
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else None
    if (
        usage
        and isinstance(usage.get("prompt_tokens"), int)
        and isinstance(usage.get("completion_tokens"), int)
    ):
        return usage["prompt_tokens"], usage["completion_tokens"], False
    return (
        estimate_tokens(prompt_text(messages)),
        estimate_tokens(completion_text) if completion_text else 0,
        True,
    )


@dataclass(frozen=True)
class Ids:
    """A completion's ids. ``completion`` is generated here, once per completion: it keys
    the rate-limit slot and the ledger row. ``request`` is the caller's X-Request-ID (or a
    generated one): a correlation field only, since a client can repeat it at will."""

    request: str
    completion: uuid.UUID = field(default_factory=uuid.uuid4)


def _entry(
    identity: Identity,
    ids: Ids,
    logical: str,
    provider: Provider | None,
    provider_model: str,
    attempts: int,
    tokens: tuple[int, int, bool],
    latency_seconds: float,
    status: str,
    *,
    error: str | None = None,
    streamed: bool = False,
) -> LedgerEntry:
    prompt, completion, estimated = tokens
    price = provider.prices.get(provider_model) if provider is not None else None
    cost = price.cost(prompt, completion) if price is not None else Decimal(0)
    return LedgerEntry(
        completion_id=ids.completion,
        request_id=ids.request,
        user_id=identity.user_id,
        organization_id=identity.organization_id,
        logical_model=logical,
        provider=provider.name if provider else "none",
        provider_model=provider_model or "none",
        attempts=max(1, attempts),
        prompt_tokens=prompt,
        completion_tokens=completion,
        tokens_estimated=estimated,
        cost_usd=cost,
        latency_ms=int(latency_seconds * 1000),
        status="failed" if status == "failed" else "succeeded",
        error=error[:2000] if error else None,
        streamed=streamed,
    )


async def record(request: Request, runtime: LlmRuntime, entry: LedgerEntry) -> None:
    """Queue the entry durably; if the queue is down, write it straight to Postgres."""
    metrics = runtime.metrics
    metrics.requests.labels(entry.provider, entry.provider_model, entry.status).inc()
    metrics.tokens.labels(entry.provider, entry.provider_model, "prompt").inc(entry.prompt_tokens)
    metrics.tokens.labels(entry.provider, entry.provider_model, "completion").inc(
        entry.completion_tokens
    )
    metrics.cost.labels(entry.provider, entry.provider_model).inc(float(entry.cost_usd))
    fields = {
        "provider": entry.provider,
        "model": entry.provider_model,
        "logical_model": entry.logical_model,
        "attempts": entry.attempts,
        "prompt_tokens": entry.prompt_tokens,
        "completion_tokens": entry.completion_tokens,
        "tokens_estimated": entry.tokens_estimated,
        "cost_usd": money(entry.cost_usd),
        "outcome": entry.status,
        "error": entry.error,
        "offline": entry.provider == "offline",
    }
    if not add_log_fields(request.scope, **fields):  # on the request's line, or one of its own
        _log.info("completion", **fields)
    try:
        await runtime.ledger.record(entry)
        return
    except Exception as exc:  # the queue is down: fall back to the database, then to the log
        metrics.ledger_failures.inc()
        _log.error("ledger queue unavailable; writing directly", error=type(exc).__name__)
    try:
        await insert_entries(get_state(request).pool, [entry])
    except Exception as exc:
        _log.error("ledger entry not stored", error=type(exc).__name__, entry=to_json(entry))


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
        return await _stream(request, runtime, caller, body, payload, decision, started, ids)
    return await _complete(request, runtime, caller, body, payload, decision, started, ids)


async def _complete(
    request: Request, runtime: LlmRuntime, caller: Identity, body: dict[str, Any], payload: dict[str, Any],
    decision: Decision, started: float, ids: Ids,
) -> Response:  # fmt: skip
    logical, messages = body["model"], body["messages"]
    if runtime.offline:
        provider = runtime.providers[0]
        answer = offline_completion(ids.completion.hex, logical, messages)
        entry = _entry(caller, ids, logical, provider, provider.models[logical], 1,
                       _usage(answer, messages, ""), time.perf_counter() - started, "succeeded")  # fmt: skip
        await record(request, runtime, entry)
        overhead = time.perf_counter() - started
        return JSONResponse(
            answer, headers={**rate_headers(decision), **proxy_headers("offline", 1, overhead)}
        )
    try:
        completion = await runtime.upstream.complete(logical, payload, ids.request)
    except ClientRequestError as error:
        return await _refused_by_provider(
            request, runtime, caller, logical, error, decision, started, ids
        )
    except AllProvidersFailedError as error:
        return await _all_failed(request, runtime, caller, logical, error, decision, started, ids)
    attempts = completion.attempts
    text = "".join(
        str(choice.get("message", {}).get("content") or "")
        for choice in completion.body.get("choices", [])
    )
    entry = _entry(caller, ids, logical, attempts.provider, attempts.provider_model, attempts.count,
                   _usage(completion.body, messages, text), time.perf_counter() - started, "succeeded")  # fmt: skip
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
        },
    )


async def _refused_by_provider(
    request: Request, runtime: LlmRuntime, caller: Identity, logical: str, error: ClientRequestError,
    decision: Decision, started: float, ids: Ids, *, streamed: bool = False,
) -> Response:  # fmt: skip
    """The provider refused the request itself: recorded (at no cost) and passed back as it is."""
    entry = _entry(caller, ids, logical, None, "", 1, (0, 0, False), time.perf_counter() - started,
                   "failed", error=f"{error.provider} answered {error.status}", streamed=streamed)  # fmt: skip
    await record(request, runtime, entry.model_copy(update={"provider": error.provider}))
    return Response(error.body, status_code=error.status, media_type=error.content_type,
                    headers={**rate_headers(decision), "X-ValueCanvas-Provider": error.provider})  # fmt: skip


async def _all_failed(
    request: Request, runtime: LlmRuntime, caller: Identity, logical: str, error: AllProvidersFailedError,
    decision: Decision, started: float, ids: Ids,
) -> Response:  # fmt: skip
    reason = "; ".join(error.reasons) or "no provider is available"
    entry = _entry(caller, ids, logical, None, "", error.attempts, (0, 0, False),
                   time.perf_counter() - started, "failed", error=reason)  # fmt: skip
    await record(request, runtime, entry)
    return error_response(502, "upstream_error", "all_providers_failed", f"every provider failed: {reason}",
                          headers={**rate_headers(decision), "X-ValueCanvas-Attempts": str(error.attempts)})  # fmt: skip


def _sse(event: Any) -> bytes:
    return f"data: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


async def _stream(
    request: Request, runtime: LlmRuntime, caller: Identity, body: dict[str, Any], payload: dict[str, Any],
    decision: Decision, started: float, ids: Ids,
) -> Response:  # fmt: skip
    logical, messages = body["model"], body["messages"]
    wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    if runtime.offline:
        provider = runtime.providers[0]
        chunks = list(offline_chunks(ids.completion.hex, logical, messages))
        entry = _entry(caller, ids, logical, provider, provider.models[logical], 1,
                       _usage(chunks[-1], messages, ""), time.perf_counter() - started, "succeeded",
                       streamed=True)  # fmt: skip

        async def offline_events() -> AsyncIterator[bytes]:
            await record(request, runtime, entry)
            for chunk in chunks:
                yield _sse(
                    chunk if wants_usage else {k: v for k, v in chunk.items() if k != "usage"}
                )
            yield b"data: [DONE]\n\n"

        headers = {
            **rate_headers(decision),
            **proxy_headers("offline", 1, time.perf_counter() - started),
        }
        return StreamingResponse(offline_events(), media_type="text/event-stream", headers=headers)

    try:
        opened = await runtime.upstream.open_stream(logical, payload, ids.request)
    except ClientRequestError as error:
        return await _refused_by_provider(request, runtime, caller, logical, error, decision, started, ids,
                                          streamed=True)  # fmt: skip
    except AllProvidersFailedError as error:
        return await _all_failed(request, runtime, caller, logical, error, decision, started, ids)
    attempts: Attempts = opened.attempts
    assert attempts.provider is not None
    provider = attempts.provider
    overhead = time.perf_counter() - started - attempts.upstream_seconds - attempts.backoff_seconds

    async def relay() -> AsyncIterator[bytes]:
        text: list[str] = []
        usage: dict[str, Any] | None = None
        finish: str | None = None
        failure: str | None = None
        recorded = False

        def ledger_entry(status: str, error: str | None = None) -> LedgerEntry:
            tokens = _usage({"usage": usage} if usage else {}, messages, "".join(text))
            return _entry(caller, ids, logical, provider, attempts.provider_model, attempts.count, tokens,
                          time.perf_counter() - started, status, error=error, streamed=True)  # fmt: skip

        try:
            event: Any = opened.first
            while event is not DONE:
                if isinstance(event, dict):
                    if isinstance(event.get("usage"), dict):
                        usage = event["usage"]
                    for choice in event.get("choices") or []:
                        finish = choice.get("finish_reason") or finish
                        content = (choice.get("delta") or {}).get("content")
                        if isinstance(content, str):
                            text.append(content)
                    usage_only = not event.get("choices") and "usage" in event
                    if not usage_only or wants_usage:
                        forwarded = (
                            event
                            if wants_usage
                            else {k: v for k, v in event.items() if k != "usage"}
                        )
                        yield _sse(forwarded)
                try:
                    event = await anext(opened.events)
                except StopAsyncIteration:
                    break
            if finish is None:
                failure = "the provider ended the stream without a finish reason"
        except (UpstreamError, OSError, Exception) as error:  # any break after the first byte
            if isinstance(error, asyncio.CancelledError):
                raise
            failure = (
                f"the provider stream failed: {getattr(error, 'reason', type(error).__name__)}"
            )
        finally:
            await opened.aclose()
            if failure is None and finish is not None:
                await record(request, runtime, ledger_entry("succeeded"))
                recorded = True
            elif not recorded:
                runtime.breakers[provider.name].record_failure()
                # Shielded: a client that went away must not cancel the spend record.
                await asyncio.shield(
                    record(request, runtime, ledger_entry("failed", failure or "client went away"))
                )
                recorded = True
        if failure is None:
            yield b"data: [DONE]\n\n"
        else:
            yield _sse({"error": {"message": failure, "type": "upstream_error", "param": None,
                                  "code": "stream_interrupted"}})  # fmt: skip

    headers = {**rate_headers(decision), **proxy_headers(provider.name, attempts.count, overhead)}
    return StreamingResponse(relay(), media_type="text/event-stream", headers=headers)


def _iso_day(value: Any) -> Any:
    """Only YYYY-MM-DD: pydantic alone would read ``0`` as a Unix time (1970-01-01)."""
    if isinstance(value, str) and not _ISO_DAY.fullmatch(value):
        raise ValueError("must be a date as YYYY-MM-DD")
    return value


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
Day = Annotated[date, BeforeValidator(_iso_day)]


@router.get(
    "/v1/usage",
    summary="Requests, tokens, cost and errors per user, organization, model and day",
    description="'end' must not be before 'start' (400 otherwise).",
    response_model=UsageReport,
    responses={
        400: error_doc("'end' is before 'start'"),
        **UNAUTHORIZED,
        403: error_doc("scope=organization is for the organization's owners and admins"),
    },
)
async def usage(
    request: Request,
    caller: Caller,
    scope: Literal["me", "organization"] = "me",
    start: Annotated[
        Day | None, Query(description="first day, YYYY-MM-DD, inclusive (default: 30 days ago)")
    ] = None,
    end: Annotated[
        Day | None, Query(description="last day, YYYY-MM-DD, inclusive (default: today)")
    ] = None,
) -> Response:
    state = get_state(request)
    today = datetime.now(UTC).date()
    start = start or today - timedelta(days=30)
    end = end or today
    if end < start:
        return error_response(
            400, "invalid_request_error", "invalid_range", "'end' is before 'start'", param="end"
        )
    async with caller_transaction(state.pool, caller, metrics=state.metrics) as connection:
        if scope == "organization":
            role = None
            if caller.organization_id is not None and caller.user_id is not None:
                role = await connection.fetchval(
                    "select role from public.organization_members where organization_id = $1 and user_id = $2",
                    caller.organization_id,
                    caller.user_id,
                )
            if role not in ("owner", "admin"):
                return error_response(403, "permission_error", "not_an_admin",
                                      "organization usage is for the organization's admins")  # fmt: skip
            condition, subject = "organization_id = $3", caller.organization_id
        else:
            condition, subject = "user_id = $3", caller.user_id
        rows = await connection.fetch(
            f"""
            select (created_at at time zone 'UTC')::date as day, user_id, organization_id, logical_model,
                   count(*) as requests, sum(prompt_tokens) as prompt_tokens,
                   sum(completion_tokens) as completion_tokens, sum(cost_usd) as cost_usd,
                   count(*) filter (where status = 'failed') as errors
            from public.llm_usage
            -- Day arithmetic in Postgres: end + 1 overflows Python's date at 9999-12-31.
            where created_at >= ($1::date)::timestamp at time zone 'UTC'
              and created_at < ($2::date + 1)::timestamp at time zone 'UTC' and {condition}
            group by 1, 2, 3, 4
            order by 1, 2, 3, 4
            """,  # noqa: S608 (condition is one of two constants)
            start,
            end,
            subject,
        )
    items = [
        {
            "day": row["day"].isoformat(),
            "user_id": str(row["user_id"]) if row["user_id"] else None,
            "organization_id": str(row["organization_id"]) if row["organization_id"] else None,
            "model": row["logical_model"],
            "requests": row["requests"],
            "prompt_tokens": int(row["prompt_tokens"]),
            "completion_tokens": int(row["completion_tokens"]),
            "cost_usd": money(row["cost_usd"]),
            "errors": row["errors"],
        }
        for row in rows
    ]
    totals = {
        "requests": sum(item["requests"] for item in items),
        "prompt_tokens": sum(item["prompt_tokens"] for item in items),
        "completion_tokens": sum(item["completion_tokens"] for item in items),
        "cost_usd": money(sum((row["cost_usd"] for row in rows), Decimal(0))),
        "errors": sum(item["errors"] for item in items),
    }
    return JSONResponse({"scope": scope, "start": start.isoformat(), "end": end.isoformat(),
                         "data": items, "totals": totals})  # fmt: skip
