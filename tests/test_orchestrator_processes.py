"""The orchestrator as it runs: real processes (the orchestrator, the five agents, the
llm-proxy with its offline provider, the gateway) on one real database.

- A value case from sample discovery notes completes; its numbers are the hand-checked
  ones below; another organization cannot see it; the webhook receiver gets a correctly
  signed delivery.
- Crash loop: 20 runs, the orchestrator killed (SIGKILL) at random moments and restarted;
  every run completes, each (run, step) has exactly one agent execution, and the LLM was
  asked at most once per step.
- Faults: an agent down (retried, then the run fails naming the step), cancellation (no
  further step runs), a bad definition refused at creation.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.rows import add_member, add_organization
from tests.support.servers import Database, RedisServer
from tests.support.tokens import bearer
from tests.support.waiting import wait_until
from tests.support.workflows import (
    INTERNAL_SECRET,
    WebhookReceiver,
    WorkflowServices,
    wait_for_end,
)
from valuecanvas.core.webhooks import signing_secret, verify

pytestmark = pytest.mark.timeout(600)

ORG_A, ORG_B = uuid.uuid4(), uuid.uuid4()
MEMBER_A, ADMIN_A, VIEWER_A, ADMIN_B = (uuid.uuid4() for _ in range(4))

NOTES = (
    "Acme Logistics has grown fast and finance is stretched. Its invoices are paid late: "
    "DSO is 60 days today. Support tickets take 24 hours to resolve on average, and the "
    "team is hiring to keep up."
)
CASE = {
    "name": "Acme renewal",
    "account": {"name": "Acme Logistics", "industry": "Logistics",
                "annual_revenue": "10000000", "support_tickets_per_year": 20000},
    "discovery_notes": NOTES,
    "costs": {"one_time": "100000", "annual": "50000"},
    "horizon_years": 3,
}  # fmt: skip

# Checked by hand (the catalogue's factors and typical improvements, migration 0011):
# DSO 60 -> 48 days (-20 %), 10,000,000 x 0.0002191781 = 2,191.78 a day of DSO;
# resolution 24 -> 16.8 hours (-30 %), 20,000 tickets x 2.5 = 50,000 an hour.
# Expected scenario: 12 x 2,191.78 + 7.2 x 50,000 = 386,301.36 a year; cost 100,000 now
# and 50,000 a year; net flows 336,301.36 a year for 3 years; at 10 % (TARGET_DISCOUNT_RATE):
# NPV = -100,000 + 336,301.36 x 2.486852 (the annuity factor) = 736,331.71;
# ROI = (3 x 386,301.36 - 250,000) / 250,000 = 3.6356; payback 100,000 / 28,025.11 a month.
EXPECTED = {"annual_benefit": Decimal("386301.36"), "total_cost": Decimal("250000.00"),
            "npv": Decimal("736331.71"), "roi": Decimal("3.6356")}  # fmt: skip


async def _seed(dsn: str, webhook_url: str | None = None) -> uuid.UUID | None:
    owner = await asyncpg.connect(dsn)
    try:
        await add_organization(owner, ORG_A, "Acme")
        await add_organization(owner, ORG_B, "Beta")
        await add_member(owner, ORG_A, MEMBER_A, "member")
        await add_member(owner, ORG_A, ADMIN_A, "admin")
        await add_member(owner, ORG_A, VIEWER_A, "viewer")
        await add_member(owner, ORG_B, ADMIN_B, "admin")
        if webhook_url is None:
            return None
        webhook: uuid.UUID = await owner.fetchval(
            """insert into public.webhooks (organization_id, url, events)
               values ($1, $2, '{value_case.completed,workflow.completed,workflow.failed}')
               returning id""",
            ORG_A, webhook_url,
        )  # fmt: skip
        return webhook
    finally:
        await owner.close()


async def _fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    owner = await asyncpg.connect(dsn)
    try:
        return list(await owner.fetch(query, *args))
    finally:
        await owner.close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hooks = WebhookReceiver().start()
    yield hooks
    hooks.stop()


@pytest.fixture
def services(
    database: Database, redis_server: RedisServer, receiver: WebhookReceiver, tmp_path: Path
) -> Iterator[WorkflowServices]:
    running = WorkflowServices(
        database, redis_server, tmp_path, webhook_ca=receiver.write_ca(tmp_path / "ca.pem"),
        gateway=True,
    )  # fmt: skip
    yield running
    running.stop()


def test_a_value_case_through_the_gateway_completes_checked_and_signed(
    database: Database, services: WorkflowServices, receiver: WebhookReceiver
) -> None:
    webhook = asyncio.run(_seed(database.owner_dsn, receiver.url))
    services.start()
    gateway = services.url("api-gateway")

    started = httpx.post(f"{gateway}/v1/value-cases", json=CASE, headers=bearer(MEMBER_A, ORG_A),
                         timeout=30)  # fmt: skip

    assert started.status_code == 202, started.text
    body = started.json()
    assert started.headers["Location"] == f"/v1/workflows/{body['workflow_id']}"
    run = wait_for_end(f"{gateway}{started.headers['Location']}", bearer(MEMBER_A, ORG_A))
    assert run["status"] == "succeeded", run
    assert [step["id"] for step in run["steps"]] == [
        "opportunity", "target-conservative", "target-expected", "target-optimistic", "integrity"
    ]  # fmt: skip
    assert all(step["status"] == "succeeded" and step["attempts"] == 1 for step in run["steps"])

    case = httpx.get(f"{gateway}/v1/value-cases/{body['value_case_id']}",
                     headers=bearer(MEMBER_A, ORG_A), timeout=10).json()  # fmt: skip
    assert case["status"] == "approved", case  # the integrity check passed
    assert case["verdict"] == "pass"
    result = case["result"]
    assert result["extractor"] == "rules"  # the offline provider: the deterministic path
    assert [o["kpi"] for o in result["opportunities"]] == ["dso", "time to resolution"]
    assert [o["baseline_source"] for o in result["opportunities"]] == ["notes", "notes"]
    scenarios = {s["name"]: s for s in result["business_case"]["scenarios"]}
    assert list(scenarios) == ["conservative", "expected", "optimistic"]
    expected = scenarios["expected"]
    for name, value in EXPECTED.items():
        assert Decimal(str(expected[name])) == value, (name, expected[name])
    assert "386,301.36" in result["narrative"]

    # Another organization sees nothing of it, through the gateway or at the service.
    for url in (f"{gateway}/v1/value-cases/{body['value_case_id']}",
                f"{gateway}/v1/workflows/{body['workflow_id']}",
                f"{services.url('orchestrator')}/v1/workflows/{body['workflow_id']}"):  # fmt: skip
        assert httpx.get(url, headers=bearer(ADMIN_B, ORG_B), timeout=10).status_code == 404

    # The webhooks: workflow.completed and value_case.completed, signed with the secret
    # the gateway showed when the webhook was registered.
    assert webhook is not None
    wait_until(lambda: len(receiver.received) >= 2, what="two webhook deliveries")
    secret = signing_secret(INTERNAL_SECRET, webhook)
    events = {}
    for delivery in receiver.received:
        assert verify(secret, delivery.headers, delivery.body), delivery.headers
        assert not verify(secret, delivery.headers, delivery.body + b" ")
        payload = json.loads(delivery.body)
        events[payload["type"]] = payload
    assert set(events) == {"workflow.completed", "value_case.completed"}
    assert events["value_case.completed"]["data"]["value_case_id"] == body["value_case_id"]
    assert events["workflow.completed"]["data"]["verdict"] == "pass"
    rows = asyncio.run(_fetch(database.owner_dsn,
                              "select event, attempt, succeeded from public.webhook_deliveries"))  # fmt: skip
    assert sorted((r["event"], r["attempt"], r["succeeded"]) for r in rows) == [
        ("value_case.completed", 1, True), ("workflow.completed", 1, True)
    ]  # fmt: skip
    # Every agent execution is linked to the run.
    audit = asyncio.run(_fetch(database.owner_dsn,
        "select agent, idempotency_key, workflow_execution_id from public.agent_audit_log"))  # fmt: skip
    assert sorted(r["idempotency_key"].split(":")[1] for r in audit) == sorted(
        step["id"] for step in run["steps"]
    )
    assert {str(r["workflow_execution_id"]) for r in audit} == {body["workflow_id"]}
