"""The orchestrator as it runs: real processes (the orchestrator, the five agents, the
llm-proxy with its offline provider, the gateway) on one real database.

- A value case from sample discovery notes completes; its numbers are the hand-checked
  ones below; another organization cannot see it; the webhook receiver gets a correctly
  signed delivery.
- Crash loop: 20 runs, the orchestrator killed (SIGKILL) at random moments and restarted;
  every run completes, each (run, step) has exactly one agent execution, and the LLM was
  asked at most once per step. Its calls to the agents go through a slowed link, so that
  every kill lands inside a run, in the wave it aims at, however fast the machine.
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

from tests.support.rows import add_member, add_organization, fetch
from tests.support.servers import Database, RedisServer
from tests.support.slowlink import SlowLink
from tests.support.tokens import bearer
from tests.support.waiting import wait_until
from tests.support.workflows import (
    AGENTS,
    CASE,
    EXPECTED,
    INTERNAL_SECRET,
    WebhookReceiver,
    WorkflowServices,
    wait_for_end,
)
from valuecanvas.core.webhooks import signing_secret, verify

pytestmark = pytest.mark.timeout(600)

ORG_A, ORG_B = uuid.uuid4(), uuid.uuid4()
MEMBER_A, ADMIN_A, VIEWER_A, ADMIN_B = (uuid.uuid4() for _ in range(4))


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
    assert body["status"] == "running"  # the engine is up: started at once
    assert started.headers["Location"] == f"/v1/workflows/{body['workflow_id']}"
    run = wait_for_end(f"{gateway}{started.headers['Location']}", bearer(MEMBER_A, ORG_A))
    assert run["status"] == "succeeded", run
    assert [step["id"] for step in run["steps"]] == [
        "opportunity", "target-conservative", "target-expected", "target-optimistic", "integrity"
    ]  # fmt: skip
    assert all(step["status"] == "succeeded" and step["attempts"] == 1 for step in run["steps"])
    # The final progress, written with the run's end from the engine's step records.
    assert all(step["replayed"] is False and step["duration_ms"] is not None
               and step["started_at"] <= step["finished_at"] for step in run["steps"])  # fmt: skip

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
    rows = asyncio.run(fetch(database.owner_dsn,
                              "select event, attempt, succeeded from public.webhook_deliveries"))  # fmt: skip
    assert sorted((r["event"], r["attempt"], r["succeeded"]) for r in rows) == [
        ("value_case.completed", 1, True), ("workflow.completed", 1, True)
    ]  # fmt: skip
    # Every agent execution is linked to the run.
    audit = asyncio.run(fetch(database.owner_dsn,
        "select agent, idempotency_key, workflow_execution_id from public.agent_audit_log"))  # fmt: skip
    assert sorted(r["idempotency_key"].split(":")[1] for r in audit) == sorted(
        step["id"] for step in run["steps"]
    )
    assert {str(r["workflow_execution_id"]) for r in audit} == {body["workflow_id"]}


def _start_cases(orchestrator: str, count: int) -> list[str]:
    runs = []
    for index in range(count):
        response = httpx.post(
            f"{orchestrator}/v1/value-cases", json={**CASE, "name": f"Case {index}"},
            headers=bearer(MEMBER_A, ORG_A), timeout=30,
        )  # fmt: skip
        assert response.status_code == 202, response.text
        runs.append(response.json()["workflow_id"])
    return runs


# Each call from the orchestrator to an agent is held this long: a value case (three waves:
# opportunity, the three targets, integrity) lasts more than three times it.
LINK_DELAY = 0.25


@pytest.fixture
def slow_link(services: WorkflowServices) -> Iterator[SlowLink]:
    link = SlowLink({agent: services.url(agent) for agent in AGENTS}, LINK_DELAY).start()
    urls = {name: services.url(name) for name in services.ports}
    services.extra["orchestrator"] = {
        "service_urls": json.dumps(urls | {agent: link.url(agent) for agent in AGENTS})
    }
    yield link
    link.stop()


def test_runs_survive_the_orchestrator_killed_at_random_and_no_step_runs_twice(
    database: Database, services: WorkflowServices, slow_link: SlowLink
) -> None:
    asyncio.run(_seed(database.owner_dsn))
    services.start()
    orchestrator = services.process("orchestrator")
    chance = random.Random(20261127)
    runs: list[str] = []
    interrupted = []
    for batch in range(5):  # five batches of four runs; after each, a kill at a random moment
        runs += _start_cases(orchestrator.url, 4)
        # A random moment in the wave this kill aims at (opportunity, the targets, integrity
        # in turn), counted from the batch's last run's start: that run has not ended.
        time.sleep(LINK_DELAY * (batch % 3) + chance.uniform(0.05, LINK_DELAY - 0.1))
        orchestrator.kill()
        unfinished = asyncio.run(fetch(database.owner_dsn,
            "select count(*) as n from public.workflow_executions where status in ('pending', 'running')"))  # fmt: skip
        interrupted.append(unfinished[0]["n"])
        orchestrator.start()
    assert all(interrupted), interrupted  # every kill interrupted runs
    print(f"runs unfinished at each kill: {interrupted}")

    finished = [
        wait_for_end(f"{orchestrator.url}/v1/workflows/{run}", bearer(MEMBER_A, ORG_A), timeout=180)
        for run in runs
    ]  # fmt: skip

    assert [run["status"] for run in finished] == ["succeeded"] * len(runs)
    # A step whose request was on its way when its caller died: the agent ran it, and the
    # restarted orchestrator, asking again, got the stored result.
    assert any(step["replayed"] for run in finished for step in run["steps"])
    rows = asyncio.run(fetch(database.owner_dsn,
        """select workflow_execution_id, idempotency_key, count(*) as n
             from public.agent_audit_log group by 1, 2"""))  # fmt: skip
    # Exactly one agent execution for every (run, step): 20 runs of 5 steps.
    assert len(rows) == len(runs) * 5
    assert {row["n"] for row in rows} == {1}
    assert {str(row["workflow_execution_id"]) for row in rows} == set(runs)
    # The LLM, at most once per step: the opportunity step and the three target steps ask it
    # once each (the offline provider), so the ledger has 4 completions a run.
    ledger = asyncio.run(fetch(database.owner_dsn, "select count(*) as n from public.llm_usage"))
    assert ledger[0]["n"] == len(runs) * 4

    # Runs recorded that the engine never started: one accepted while it was not up
    # (pending), one whose process died between the commit and the start (running, with
    # no workflow in the engine). Once the orchestrator is back, it starts both.
    orchestrator.stop()
    orphans = [str(row["id"]) for row in asyncio.run(fetch(database.owner_dsn,
        """insert into public.workflow_executions
             (organization_id, workflow_definition_id, status, input, started_by, steps, started_at)
           select e.organization_id, e.workflow_definition_id, s.status, e.input, e.started_by,
                  (select jsonb_object_agg(key, '{"status": "pending", "attempts": 0}'::jsonb)
                     from jsonb_each(e.steps)),
                  case when s.status = 'running' then now() end
             from public.workflow_executions e, (values ('pending'), ('running')) s (status)
            where e.id = $1
           returning id""", uuid.UUID(runs[0])))]  # fmt: skip
    orchestrator.start()
    ended = [wait_for_end(f"{orchestrator.url}/v1/workflows/{run}", bearer(MEMBER_A, ORG_A))
             for run in orphans]  # fmt: skip
    assert [run["status"] for run in ended] == ["succeeded", "succeeded"]
    assert all(step["attempts"] == 1 for run in ended for step in run["steps"])
    assert sorted(_audit_steps(database.owner_dsn, orphans[0])) == sorted(
        step["id"] for step in ended[0]["steps"]
    )


def _audit_steps(dsn: str, run: str) -> list[str]:
    rows = asyncio.run(fetch(dsn,
        "select idempotency_key from public.agent_audit_log where workflow_execution_id = $1",
        uuid.UUID(run)))  # fmt: skip
    return sorted(row["idempotency_key"].split(":")[1] for row in rows)


def test_faults_an_agent_down_a_cancelled_run_and_bad_definitions(
    database: Database, services: WorkflowServices, receiver: WebhookReceiver
) -> None:
    asyncio.run(_seed(database.owner_dsn, receiver.url))
    services.start()
    orchestrator = services.url("orchestrator")
    member, admin = bearer(MEMBER_A, ORG_A), bearer(ADMIN_A, ORG_A)

    # A bad definition is refused at creation, the problem named; only admins add them.
    def refused(definition: dict[str, Any], headers: dict[str, str] = admin) -> httpx.Response:
        return httpx.post(f"{orchestrator}/v1/workflow-definitions", headers=headers, timeout=10,
                          json={"name": "custom", "definition": definition})  # fmt: skip

    cycle = refused({"steps": [{"id": "a", "agent": "target", "needs": ["b"]},
                               {"id": "b", "agent": "target", "needs": ["a"]}]})  # fmt: skip
    assert cycle.status_code == 422
    assert "the steps form a cycle: " in cycle.text
    assert "a -> b -> a" in cycle.text or "b -> a -> b" in cycle.text
    unknown = refused({"steps": [{"id": "a", "agent": "astrologer"}]})
    assert unknown.status_code == 422
    assert "unknown agent 'astrologer'" in unknown.text
    unwaited = refused({"steps": [{"id": "a", "agent": "target"},
                                  {"id": "b", "agent": "integrity",
                                   "input": {"x": {"$ref": "a"}}}]})  # fmt: skip
    assert unwaited.status_code == 422
    assert "reads step a but does not wait for it" in unwaited.text
    assert refused({"steps": [{"id": "a", "agent": "target"}]}, member).status_code == 403
    assert asyncio.run(fetch(database.owner_dsn,
        "select * from public.workflow_definitions where name = 'custom'")) == []  # fmt: skip

    # An agent down: each target step is tried three times, then the run fails, naming
    # the step; nothing after it runs, and the failure is delivered.
    services.process("target").stop()
    started = httpx.post(f"{orchestrator}/v1/value-cases", json=CASE, headers=member, timeout=30)
    run_id = started.json()["workflow_id"]
    run = wait_for_end(f"{orchestrator}/v1/workflows/{run_id}", member)
    assert run["status"] == "failed"
    assert run["failed_step"] == "target-conservative"
    assert "target did not answer" in run["error"]
    assert "after 3 attempts" in run["error"]
    steps = {step["id"]: step for step in run["steps"]}
    assert steps["target-conservative"]["attempts"] == 3
    assert steps["target-conservative"]["status"] == "failed"
    assert steps["integrity"]["status"] == "pending"
    assert _audit_steps(database.owner_dsn, run_id) == ["opportunity"]
    case = httpx.get(f"{orchestrator}/v1/value-cases/{started.json()['value_case_id']}",
                     headers=member, timeout=10).json()  # fmt: skip
    assert case["status"] == "failed"
    wait_until(lambda: any(json.loads(r.body)["type"] == "workflow.failed"
                           for r in receiver.received), what="the workflow.failed delivery")  # fmt: skip

    # Cancellation: a run whose second step keeps retrying (its agent is down) is cancelled;
    # when the agent is back, no further step runs.
    patient = {"steps": [
        {"id": "find", "agent": "opportunity",
         "input": {"account": {"$ref": "input", "pointer": "/account"},
                   "discovery_notes": {"$ref": "input", "pointer": "/discovery_notes"}}},
        {"id": "case", "agent": "target", "needs": ["find"], "attempts": 10,
         "input": {"benefits": {"$ref": "find", "pointer": "/benefits"},
                   "costs": {"$ref": "input", "pointer": "/costs"}}},
        {"id": "check", "agent": "integrity", "needs": ["case"],
         "input": {"inputs": {"$ref": "case.input"}, "output": {"$ref": "case"}}},
    ]}  # fmt: skip
    created = refused(patient)
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1
    started = httpx.post(f"{orchestrator}/v1/workflows", headers=member, timeout=30,
                         json={"definition": "custom", "input": CASE})  # fmt: skip
    assert started.status_code == 202, started.text
    run_id = started.json()["workflow_id"]
    wait_until(lambda: httpx.get(f"{orchestrator}/v1/workflows/{run_id}", headers=member,
                                 timeout=10).json()["steps"][1]["attempts"] >= 2,
               what="the case step retrying")  # fmt: skip
    viewer = httpx.post(f"{orchestrator}/v1/workflows/{run_id}/cancel",
                        headers=bearer(VIEWER_A, ORG_A), timeout=10)  # fmt: skip
    assert viewer.status_code == 403
    cancelled = httpx.post(f"{orchestrator}/v1/workflows/{run_id}/cancel", headers=member,
                           timeout=10)  # fmt: skip
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    services.process("target").start()
    time.sleep(2)  # the steps the run would take next, if cancelling had not stopped it
    run = httpx.get(f"{orchestrator}/v1/workflows/{run_id}", headers=member, timeout=10).json()
    assert run["status"] == "cancelled"
    assert [(step["id"], step["status"]) for step in run["steps"]] == [
        ("find", "succeeded"), ("case", "cancelled"), ("check", "pending")
    ]  # fmt: skip
    assert _audit_steps(database.owner_dsn, run_id) == ["find"]
    again = httpx.post(f"{orchestrator}/v1/workflows/{run_id}/cancel", headers=member, timeout=10)
    assert again.status_code == 409
