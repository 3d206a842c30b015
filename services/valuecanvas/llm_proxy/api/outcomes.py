"""What every completion path shares: reading and checking the request, the response
headers, a completion's ids and its ledger entry (recorded before the answer leaves), and
the answers for a request the providers refused or could not serve."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from valuecanvas.core.body import BodyError, read_json_object
from valuecanvas.core.errors import error_response
from valuecanvas.core.identity import Identity
from valuecanvas.core.logging import get_logger
from valuecanvas.core.middleware import add_log_fields
from valuecanvas.core.ratelimit import Decision
from valuecanvas.core.state import get_state
from valuecanvas.llm_proxy.config import Provider
from valuecanvas.llm_proxy.ledger import LedgerEntry, to_json
from valuecanvas.llm_proxy.offline import estimate_tokens, prompt_text
from valuecanvas.llm_proxy.repository import insert_entries
from valuecanvas.llm_proxy.runtime import LlmRuntime
from valuecanvas.llm_proxy.schemas import ChatCompletionRequest, money
from valuecanvas.llm_proxy.upstream import AllProvidersFailedError, ClientRequestError

_log = get_logger("valuecanvas.llm_proxy.api")


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


def cost_headers(entry: LedgerEntry) -> dict[str, str]:
    """What a completion cost, and its ledger id: a caller (an agent) accounts for it."""
    return {
        "X-ValueCanvas-Completion-Id": str(entry.completion_id),
        "X-ValueCanvas-Cost-Usd": money(entry.cost_usd),
    }


def token_usage(
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


def ledger_entry_for(
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


async def refused_by_provider(
    request: Request, runtime: LlmRuntime, caller: Identity, logical: str, error: ClientRequestError,
    decision: Decision, started: float, ids: Ids, *, streamed: bool = False,
) -> Response:  # fmt: skip
    """The provider refused the request itself: recorded (at no cost) and passed back as it is."""
    entry = ledger_entry_for(caller, ids, logical, None, "", 1, (0, 0, False), time.perf_counter() - started,
                   "failed", error=f"{error.provider} answered {error.status}", streamed=streamed)  # fmt: skip
    await record(request, runtime, entry.model_copy(update={"provider": error.provider}))
    return Response(error.body, status_code=error.status, media_type=error.content_type,
                    headers={**rate_headers(decision), "X-ValueCanvas-Provider": error.provider})  # fmt: skip


async def all_providers_failed(
    request: Request, runtime: LlmRuntime, caller: Identity, logical: str, error: AllProvidersFailedError,
    decision: Decision, started: float, ids: Ids,
) -> Response:  # fmt: skip
    reason = "; ".join(error.reasons) or "no provider is available"
    entry = ledger_entry_for(caller, ids, logical, None, "", error.attempts, (0, 0, False),
                   time.perf_counter() - started, "failed", error=reason)  # fmt: skip
    await record(request, runtime, entry)
    return error_response(502, "upstream_error", "all_providers_failed", f"every provider failed: {reason}",
                          headers={**rate_headers(decision), "X-ValueCanvas-Attempts": str(error.attempts)})  # fmt: skip
