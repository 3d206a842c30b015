"""The agents' shared run path (core/agent.py) and the target agent, in process against a
real Postgres: one audit row per invocation, replays by idempotency key, refusals."""

from __future__ import annotations

import asyncio
import json
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
    # Every input in range, the result beyond what an output holds (10^15): schemathesis's.
    beyond = {**CASE, "benefits": [{**CASE["benefits"][0], "value_per_unit": "111274235137",
                                    "baseline": "10000000", "target": "8"}]}  # fmt: skip

    answers = [target.post("/v1/run", json=body, headers=bearer(MEMBER, ORG))
               for body in (worse, costly, negative, huge, beyond)]  # fmt: skip

    assert [a.status_code for a in answers] == [422, 422, 422, 422, 422]
    assert [a.json()["param"] for a in answers] == [
        "benefits.0.target", "costs.annual", "costs.one_time", "costs.one_time", "benefits",
    ]  # fmt: skip
    assert "beyond 10^15" in answers[-1].json()["detail"]
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


# Realization.

CASE_ID = uuid.uuid4()
PERIOD = {"period_start": "2026-01-01", "period_end": "2026-12-31", "as_of": "2026-07-20"}
GOALS = [
    {"kpi": "dso", "baseline": "45", "target": "35", "direction": "decrease"},
    {"kpi": "win rate", "baseline": "20", "target": "30", "direction": "increase"},
]


@pytest.fixture
def realization(database: Database) -> Iterator[TestClient]:
    async def seed() -> None:
        await _seed(database.owner_dsn)
        owner = await asyncpg.connect(database.owner_dsn)
        try:
            await owner.execute(
                "insert into public.value_cases (id, organization_id, name) values ($1, $2, 'Acme')",
                CASE_ID, ORG,
            )  # fmt: skip
        finally:
            await owner.close()

    asyncio.run(seed())
    app = SERVICES["realization"].create_app(settings_for("realization", database.app_dsn))
    with TestClient(app) as client:
        yield client


def record(client: TestClient, kpi: str, day: str, value: str, user: uuid.UUID = MEMBER) -> Any:
    return client.post(
        "/v1/kpi-measurements",
        json={"value_case_id": str(CASE_ID), "kpi": kpi, "measured_on": day, "value": value},
        headers=bearer(user, ORG),
    )


def test_realization_tracks_each_kpi_against_its_target(realization: TestClient) -> None:
    # dso falls 0.03 a day: 45 on day 0, 42 on day 100, 39 on day 200 (July 20).
    for day, value in (("2026-01-01", "45"), ("2026-04-11", "42"), ("2026-07-20", "39")):
        assert record(realization, "dso", day, value).status_code == 201
    # The win rate barely moves: 20, then 21 on day 200.
    record(realization, "win rate", "2026-01-01", "20")
    record(realization, "win rate", "2026-07-20", "21")
    record(realization, "win rate", "2026-07-20", "21")  # the same day again corrects it

    response = realization.post(
        "/v1/run", json={"value_case_id": str(CASE_ID), **PERIOD, "kpis": GOALS},
        headers=bearer(MEMBER, ORG),
    )  # fmt: skip

    assert response.status_code == 200, response.text
    report = response.json()
    dso, win = report["kpis"]
    assert (dso["status"], dso["realized_share"], dso["expected_share"]) == (
        "on_track", "0.6000", "0.5495",  # 6 of 10 points; 200 of 364 days
    )  # fmt: skip
    assert dso["trend_per_30_days"] == "-0.9"  # -0.03 a day
    assert dso["forecast_value"] == "34.08"  # 45 - 0.03 x 364
    assert dso["forecast_share"] == "1.0920"
    assert dso["flags"] == []
    assert (win["status"], win["realized_share"], win["forecast_share"]) == (
        "at_risk", "0.1000", "0.1820",  # 20 + 0.005 x 364 = 21.82
    )  # fmt: skip
    assert win["flags"] == ["behind_plan", "forecast_short"]
    assert (report["status"], report["at_risk"]) == ("at_risk", ["win rate"])


def test_realization_refuses_what_it_cannot_track(realization: TestClient) -> None:
    unknown_case = realization.post(
        "/v1/run", json={"value_case_id": str(uuid.uuid4()), **PERIOD, "kpis": GOALS},
        headers=bearer(MEMBER, ORG),
    )  # fmt: skip
    backwards = realization.post(
        "/v1/run",
        json={"value_case_id": str(CASE_ID), **PERIOD, "period_end": "2025-01-01", "kpis": GOALS},
        headers=bearer(MEMBER, ORG),
    )
    no_improvement = realization.post(
        "/v1/run",
        json={"value_case_id": str(CASE_ID), **PERIOD,
              "kpis": [{**GOALS[0], "target": "50"}]},
        headers=bearer(MEMBER, ORG),
    )  # fmt: skip
    nothing_yet = realization.post(
        "/v1/run", json={"value_case_id": str(CASE_ID), **PERIOD, "kpis": GOALS[:1]},
        headers=bearer(MEMBER, ORG),
    )  # fmt: skip

    assert (unknown_case.status_code, unknown_case.json()["param"]) == (422, "value_case_id")
    assert backwards.status_code == 422
    assert (no_improvement.status_code, no_improvement.json()["param"]) == (422, "kpis.0.target")
    assert nothing_yet.json()["kpis"][0]["flags"] == ["no_measurements"]


def test_measurements_are_the_organizations_own(realization: TestClient) -> None:
    stranger = realization.post(
        "/v1/kpi-measurements",
        json={
            "value_case_id": str(CASE_ID),
            "kpi": "dso",
            "measured_on": "2026-02-01",
            "value": "1",
        },
        headers=bearer(OUTSIDER, OTHER),
    )

    assert stranger.status_code == 404  # another organization's case does not exist for them


# Integrity.

NOTES = ["Finance says collections take 45 days on average; the CFO wants 35.",
         "Win rate is stuck at 20% since the last reorganisation."]  # fmt: skip


@pytest.fixture
def integrity(database: Database, target: TestClient) -> Iterator[tuple[TestClient, TestClient]]:
    app = SERVICES["integrity"].create_app(settings_for("integrity", database.app_dsn))
    with TestClient(app) as client:
        yield client, target


def checked(client: TestClient, case_output: dict[str, Any], **extra: Any) -> Any:
    response = client.post(
        "/v1/run", json={"inputs": CASE, "output": case_output, **extra},
        headers=bearer(MEMBER, ORG),
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return response.json()


def test_a_true_case_passes_and_a_tampered_one_fails_naming_the_number(
    integrity: tuple[TestClient, TestClient], database: Database
) -> None:
    client, target = integrity
    output = target.post("/v1/run", json=CASE, headers=bearer(MEMBER, ORG)).json()
    narrative = ("Cutting DSO from 45 to 35 days and lifting the win rate 4 points is worth "
                 "$100,000 a year; after the 120k outlay the expected case returns 42.86% over "
                 "3 years, with an NPV of $60,396.79 and payback in 20.6 months.")  # fmt: skip
    claims = [{"text": "DSO is 45 days", "source_quote": "collections take 45 days on average"}]
    tampered = json.loads(json.dumps(output))
    tampered["scenarios"][1]["npv"] = "90000.00"

    honest = checked(client, output, narrative=narrative, claims=claims, sources=NOTES)
    forged = checked(client, tampered)
    invented = checked(client, output, narrative="It returns 85% in the first year.")
    uncited = checked(
        client, output, sources=NOTES,
        claims=[{"text": "the CEO approved it"}, {"text": "DSO is 60", "source_quote": "DSO is 60 days"}],
    )  # fmt: skip

    assert (honest["verdict"], honest["findings"]) == ("pass", [])
    assert honest["checked"]["narrative_numbers"] == 9
    assert forged["verdict"] == "fail"
    assert [f["where"] for f in forged["findings"]] == ["output.scenarios.1.npv"]
    assert "stated 90000.00, computed 60396.79" in forged["findings"][0]["message"]
    assert invented["verdict"] == "fail"
    assert invented["findings"][0]["message"].startswith("'85%' matches no number")
    assert [f["where"] for f in uncited["findings"]] == ["claims.0", "claims.1"]
    verdicts = [r["output"] for r in audit_rows(database.owner_dsn) if r["agent"] == "integrity"]
    assert len(verdicts) == 4


def test_the_organizations_policies_warn_or_block(
    integrity: tuple[TestClient, TestClient], database: Database
) -> None:
    client, target = integrity
    output = target.post("/v1/run", json=CASE, headers=bearer(MEMBER, ORG)).json()

    async def add_policies() -> None:
        owner = await asyncpg.connect(database.owner_dsn)
        try:
            await owner.executemany(
                "insert into public.policy_enforcement (organization_id, policy_key, scope, action, rule)"
                " values ($1, $2, 'agent', $3, $4::jsonb)",
                [(ORG, "roi.approval", "warn",
                  json.dumps({"metric": "roi", "op": "gt", "value": 0.3, "message": "ROI above 30% needs approval"})),
                 (ORG, "payback.minimum", "block",
                  json.dumps({"metric": "payback_months", "op": "lt", "value": 1}))],
            )  # fmt: skip
        finally:
            await owner.close()

    warned = checked(client, output)
    asyncio.run(add_policies())
    with_policies = checked(client, output)
    quick = json.loads(json.dumps(output))
    quick["scenarios"][1]["payback_months"] = "0.5"
    blocked = checked(client, quick)

    assert warned["verdict"] == "pass"
    assert with_policies["verdict"] == "warn"
    assert with_policies["findings"][0]["message"].startswith("policy roi.approval: ROI above 30%")
    assert blocked["verdict"] == "fail"  # the payback rule blocks (and the recomputation too)
    assert {f["check"] for f in blocked["findings"]} == {"policies", "recompute"}


def test_a_forged_output_beyond_what_the_target_agent_writes_is_a_422(
    integrity: tuple[TestClient, TestClient], database: Database
) -> None:
    """The output comes from the client: a horizon of 382,915 years once made IRR's
    polynomial that large (a MemoryError, a 500; schemathesis found it)."""
    client, target = integrity
    output = target.post("/v1/run", json=CASE, headers=bearer(MEMBER, ORG)).json()
    scenario = output["scenarios"][0]
    forged = [
        {**output, "horizon_years": 382915},
        {**output, "scenarios": [scenario] * 11},
        {**output, "scenarios": [{**scenario, "cash_flows": ["1"] * 12}]},
    ]

    answers = [client.post("/v1/run", json={"inputs": CASE, "output": body},
                           headers=bearer(MEMBER, ORG)) for body in forged]  # fmt: skip

    assert [a.status_code for a in answers] == [422, 422, 422]
    assert [a.json()["param"] for a in answers] == [
        "output.horizon_years", "output.scenarios", "output.scenarios.0.cash_flows",
    ]  # fmt: skip
    assert not [r for r in audit_rows(database.owner_dsn) if r["agent"] == "integrity"]


# Expansion.


@pytest.fixture
def expansion(database: Database) -> Iterator[TestClient]:
    asyncio.run(_seed(database.owner_dsn))
    app = SERVICES["expansion"].create_app(settings_for("expansion", database.app_dsn))
    with TestClient(app) as client:
        yield client


def test_expansion_ranks_what_the_customer_lacks_by_expected_value(expansion: TestClient) -> None:
    review = {
        "owned": ["vc-core"],
        "kpis": [
            {"kpi": "DSO", "status": "at_risk", "remaining_gap": "6", "value_per_unit": "40000"},
            {"kpi": "win rate", "status": "on_track", "remaining_gap": "2", "value_per_unit": "15000"},
            {"kpi": "time to value", "status": "achieved", "remaining_gap": "0", "value_per_unit": "5000"},
        ],
    }  # fmt: skip

    response = expansion.post("/v1/run", json=review, headers=bearer(MEMBER, ORG))

    assert response.status_code == 200, response.text
    ranked = {c["sku"]: c for c in response.json()["candidates"]}
    # Collections: 6 x 30% x 40 000 x need 1.0 = 72 000, minus 30 000 a year.
    assert ranked["vc-collections"]["expected_value"] == "42000.00"
    assert ranked["vc-collections"]["kind"] == "cross_sell"  # a family not owned yet
    # Forecasting: win rate 2 x 25% x 15 000 x need 0.6 = 4 500, minus 36 000.
    assert ranked["vc-forecasting"]["expected_value"] == "-31500.00"
    # Realization Tracking: in the owned family (an upsell); its KPI is achieved (no gap).
    assert (ranked["vc-realization"]["kind"], ranked["vc-realization"]["expected_value"]) == (
        "upsell", "-18000.00",
    )  # fmt: skip
    assert next(iter(ranked)) == "vc-collections"  # the best first
    assert "vc-core" not in ranked  # owned
    assert "DSO (at risk, 6 units short)" in ranked["vc-collections"]["rationale"]


def test_a_product_needs_its_prerequisites(expansion: TestClient) -> None:
    review = {"owned": [], "kpis": [{"kpi": "dso", "status": "at_risk", "remaining_gap": "6",
                                     "value_per_unit": "40000"}]}  # fmt: skip

    response = expansion.post("/v1/run", json=review, headers=bearer(MEMBER, ORG))

    assert response.json()["candidates"] == []  # Collections needs vc-core first
