"""Webhooks when a run ends: ``workflow.completed`` or ``workflow.failed``, and for a value
case also ``value_case.completed`` or ``value_case.failed``.

Each delivery is a durable step with its own retries (backoff doubling from
ORCHESTRATOR_WEBHOOK_RETRY_INTERVAL_SECONDS); every attempt is a webhook_deliveries row.
The body is the same in every attempt; the signature (core/webhooks.py) is made per
attempt, with that attempt's timestamp. ``ValueCanvas-Delivery`` is the same in every
attempt, so a receiver can drop a delivery it has already taken.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from uuid import UUID

import httpx
from dbos import DBOS

from valuecanvas.core.logging import get_logger
from valuecanvas.core.webhooks import signed_headers, signing_secret
from valuecanvas.orchestrator import repository
from valuecanvas.orchestrator.runtime import current

_log = get_logger("valuecanvas.orchestrator.webhooks")
EVENT_HEADER = "ValueCanvas-Event"
DELIVERY_HEADER = "ValueCanvas-Delivery"


class DeliveryError(Exception):
    """The receiver did not take the delivery (no answer, or not 2xx)."""


async def deliver_once(
    job: dict[str, Any], webhook: dict[str, str], event: str, body: dict[str, Any]
) -> int:
    runtime = current()
    status = DBOS.step_status
    attempt = 1 + ((status.current_attempt or 0) if status is not None else 0)
    secret = signing_secret(
        runtime.settings.internal_token_secret.get_secret_value(), UUID(webhook["id"])
    )
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {
        **signed_headers(secret, raw),
        EVENT_HEADER: event,
        DELIVERY_HEADER: body["id"],
        "User-Agent": "ValueCanvas-Webhooks/1",
    }
    started = time.perf_counter()
    code: int | None = None
    error: str | None = None
    try:
        response = await runtime.webhooks.post(webhook["url"], content=raw, headers=headers)
        code = response.status_code
        if not 200 <= code < 300:
            error = f"answered {code}"
    except httpx.HTTPError as exc:
        error = f"no answer: {type(exc).__name__}"
    await repository.record_delivery(
        runtime.state.pool, UUID(job["organization_id"]), UUID(webhook["id"]),
        UUID(job["execution_id"]), event, attempt=attempt, status_code=code, error=error,
        succeeded=error is None, duration_ms=round((time.perf_counter() - started) * 1000),
    )  # fmt: skip
    if error is not None:
        raise DeliveryError(f"webhook {webhook['id']}: {error}")
    assert code is not None
    return code


async def _deliver(
    job: dict[str, Any], webhook: dict[str, str], event: str, body: dict[str, Any]
) -> None:
    settings = current().settings
    try:
        await DBOS.run_step_async(
            {
                "name": f"webhook:{event}:{webhook['id']}",
                "retries_allowed": True,
                "max_attempts": settings.orchestrator_webhook_attempts,
                "interval_seconds": settings.orchestrator_webhook_retry_interval_seconds,
                "backoff_rate": 2.0,
            },
            deliver_once, job, webhook, event, body,
        )  # fmt: skip
    except Exception as exc:  # every attempt failed: recorded; the run's outcome stands
        _log.warning("webhook not delivered", webhook=webhook["id"], webhook_event=event,
                     error=str(exc)[:300])  # fmt: skip


async def deliver_all(
    job: dict[str, Any], outcome: str, details: dict[str, Any], end: dict[str, Any]
) -> None:
    """Deliver the run's end to the webhooks ``end`` lists for each event (the finish
    step's checkpoint), each delivery a durable step."""
    for event, targets in end["targets"].items():
        body = {
            "id": f"{job['execution_id']}:{event}",
            "type": event,
            "created_at": end["finished_at"],
            "data": {
                "workflow_id": job["execution_id"],
                "definition": job["definition_name"],
                "status": "succeeded" if outcome == "completed" else "failed",
                "value_case_id": job.get("value_case_id"),
                "organization_id": job["organization_id"],
                **details,
            },
        }
        await asyncio.gather(*(_deliver(job, target, event, body) for target in targets))
