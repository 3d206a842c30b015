"""The agents' shared run path (core/agent.py) and the target agent, in process against a
real Postgres: one audit row per invocation, replays by idempotency key, refusals."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from tests.support.rows import add_member, add_organization
from tests.support.servers import Database
from tests.support.tokens import bearer
from tests.test_service_apps import settings_for
from valuecanvas.registry import SERVICES

ORG, OTHER = uuid.uuid4(), uuid.uuid4()
MEMBER, OUTSIDER = uuid.uuid4(), uuid.uuid4()
CASE: dict[str, Any] = {
    "currency": "EUR",
    "benefits": [
        {"kpi": "days sales outstanding", "baseline": "45", "target": "35",
         "direction": "decrease", "value_per_unit": "4000"},
        {"kpi": "win rate (%)", "baseline": "20", "target": "24", "direction": "increase",
         "value_per_unit": "15000"},
    ],
    "costs": {"one_time": "120000", "annual": "30000"},
    "horizon_years": 3,
    "discount_rate": "0.08",
}  # fmt: skip


async def _seed(dsn: str) -> None:
    owner = await asyncpg.connect(dsn)
    try:
        await add_organization(owner, ORG, "Acme")
        await add_organization(owner, OTHER, "Other")
        await add_member(owner, ORG, MEMBER, "member")
        await add_member(owner, OTHER, OUTSIDER, "member")
    finally:
        await owner.close()


@pytest.fixture
def target(database: Database) -> Iterator[TestClient]:
    asyncio.run(_seed(database.owner_dsn))
    app = SERVICES["target"].create_app(settings_for("target", database.app_dsn))
    with TestClient(app) as client:
        yield client


def audit_rows(dsn: str) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(dsn)
        try:
            return list(await connection.fetch(
                "select agent, user_id, organization_id, idempotency_key, inputs_hash, output,"
                " duration_ms from public.agent_audit_log order by id"
            ))  # fmt: skip
        finally:
            await connection.close()

    return asyncio.run(fetch())


def test_a_business_case_is_computed_and_recorded_once_per_key(
    target: TestClient, database: Database
) -> None:
    headers = {**bearer(MEMBER, ORG), "Idempotency-Key": "wf-1:target"}
    first = target.post("/v1/run", json=CASE, headers=headers)
    again = target.post("/v1/run", json=CASE, headers=headers)
    other_inputs = target.post("/v1/run", json={**CASE, "horizon_years": 5}, headers=headers)

    assert first.status_code == 200, first.text
    scenarios = {s["name"]: s for s in first.json()["scenarios"]}
    assert list(scenarios) == ["conservative", "expected", "optimistic"]
    expected = scenarios["expected"]
    # 10 days x 4 000 + 4 points x 15 000 = 100 000 a year; net 70 000 a year.
    assert expected["annual_benefit"] == "100000.00"
    assert expected["cash_flows"] == ["-120000.00", "70000.00", "70000.00", "70000.00"]
    assert expected["payback_months"] == "20.6"  # 120 000 / (70 000 / 12)
    # -120 000 + 70 000 x (1/1.08 + 1/1.08^2 + 1/1.08^3) = -120 000 + 70 000 x 2.577097
    assert expected["npv"] == "60396.79"
    assert expected["roi"] == "0.4286"  # (300 000 - 210 000) / 210 000
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert other_inputs.status_code == 409
    rows = audit_rows(database.owner_dsn)
    assert len(rows) == 1
    assert (rows[0]["agent"], rows[0]["user_id"], rows[0]["idempotency_key"]) == (
        "target", MEMBER, "wf-1:target",
    )  # fmt: skip
    assert len(rows[0]["inputs_hash"]) == 64


def test_an_impossible_case_is_a_422_naming_the_field_and_records_nothing(
    target: TestClient, database: Database
) -> None:
    worse = {**CASE, "benefits": [{**CASE["benefits"][0], "target": "50"}]}
    costly = {**CASE, "costs": {"one_time": "1", "annual": "999999"}}
    negative = {**CASE, "costs": {"one_time": "-5", "annual": "0"}}
    huge = {**CASE, "costs": {"one_time": 1e308, "annual": "0"}}

    answers = [target.post("/v1/run", json=body, headers=bearer(MEMBER, ORG))
               for body in (worse, costly, negative, huge)]  # fmt: skip

    assert [a.status_code for a in answers] == [422, 422, 422, 422]
    assert [a.json()["param"] for a in answers] == [
        "benefits.0.target", "costs.annual", "costs.one_time", "costs.one_time",
    ]  # fmt: skip
    assert audit_rows(database.owner_dsn) == []


def test_keys_are_per_organization_and_members_only(target: TestClient, database: Database) -> None:
    key = {"Idempotency-Key": "shared-key"}
    mine = target.post("/v1/run", json=CASE, headers={**bearer(MEMBER, ORG), **key})
    # Another organization's same key runs its own case: it never sees the first one's.
    theirs = target.post(
        "/v1/run", json={**CASE, "horizon_years": 2}, headers={**bearer(OUTSIDER, OTHER), **key}
    )
    stranger = target.post("/v1/run", json=CASE, headers=bearer(OUTSIDER, ORG))

    assert mine.status_code == 200
    assert theirs.status_code == 200
    assert "idempotent-replayed" not in theirs.headers
    assert stranger.status_code == 403
    assert [r["organization_id"] for r in audit_rows(database.owner_dsn)] == [ORG, OTHER]
