"""Streamed completions (SSE): the first event is read before the answer starts, so a
failure before it is invisible (fallback); after it, a failure ends the stream with an
error event and no [DONE]. Every stream's outcome is recorded, even a client that left."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from valuecanvas.core.identity import Identity
from valuecanvas.core.ratelimit import Decision
from valuecanvas.llm_proxy.api.outcomes import (
    Ids,
    all_providers_failed,
    ledger_entry_for,
    proxy_headers,
    rate_headers,
    record,
    refused_by_provider,
    token_usage,
)
from valuecanvas.llm_proxy.ledger import LedgerEntry
from valuecanvas.llm_proxy.offline import offline_chunks
from valuecanvas.llm_proxy.runtime import LlmRuntime
from valuecanvas.llm_proxy.upstream import (
    DONE,
    AllProvidersFailedError,
    Attempts,
    ClientRequestError,
    UpstreamError,
)


def sse_event(event: Any) -> bytes:
    return f"data: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


async def stream(
    request: Request, runtime: LlmRuntime, caller: Identity, body: dict[str, Any], payload: dict[str, Any],
    decision: Decision, started: float, ids: Ids,
) -> Response:  # fmt: skip
    logical, messages = body["model"], body["messages"]
    wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    if runtime.offline:
        provider = runtime.providers[0]
        chunks = list(offline_chunks(ids.completion.hex, logical, messages))
        entry = ledger_entry_for(caller, ids, logical, provider, provider.models[logical], 1,
                       token_usage(chunks[-1], messages, ""), time.perf_counter() - started, "succeeded",
                       streamed=True)  # fmt: skip

        async def offline_events() -> AsyncIterator[bytes]:
            await record(request, runtime, entry)
            for chunk in chunks:
                yield sse_event(
                    chunk if wants_usage else {k: v for k, v in chunk.items() if k != "usage"}
                )
            yield b"data: [DONE]\n\n"

        headers = {
            **rate_headers(decision),
            **proxy_headers("offline", 1, time.perf_counter() - started),
        }
        return StreamingResponse(offline_events(), media_type="text/event-stream", headers=headers)

    try:
        opened = await runtime.upstream.open_stream(logical, payload)
    except ClientRequestError as error:
        return await refused_by_provider(request, runtime, caller, logical, error, decision, started, ids,
                                          streamed=True)  # fmt: skip
    except AllProvidersFailedError as error:
        return await all_providers_failed(
            request, runtime, caller, logical, error, decision, started, ids
        )
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
            tokens = token_usage({"usage": usage} if usage else {}, messages, "".join(text))
            return ledger_entry_for(caller, ids, logical, provider, attempts.provider_model, attempts.count, tokens,
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
                        yield sse_event(forwarded)
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
            yield sse_event({"error": {"message": failure, "type": "upstream_error", "param": None,
                                  "code": "stream_interrupted"}})  # fmt: skip

    headers = {**rate_headers(decision), **proxy_headers(provider.name, attempts.count, overhead)}
    return StreamingResponse(relay(), media_type="text/event-stream", headers=headers)
