"""The orchestrator's parts that need no process: definitions checked as DAGs of known
agents, the input expressions, webhook signatures, and the opportunity agent's
extractors (the deterministic one, and the validation of a model's answer)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from valuecanvas.core.webhooks import signed_headers, signing_secret, verify
from valuecanvas.opportunity.extract import (
    Driver,
    Finding,
    opportunities,
    parse_llm_answer,
    rule_findings,
)
from valuecanvas.opportunity.schemas import Account
from valuecanvas.orchestrator.definitions import DefinitionSpec, builtin_definitions, stored
from valuecanvas.orchestrator.mapping import MappingError, resolve
from valuecanvas.orchestrator.progress import as_record, from_engine, view


def step(id_: str, agent: str = "target", **extra: Any) -> dict[str, Any]:
    return {"id": id_, "agent": agent, **extra}


@pytest.mark.parametrize(
    ("steps", "named"),
    [
        ([step("a", needs=["b"]), step("b", needs=["c"]), step("c", needs=["a"])],
         "the steps form a cycle: "),
        ([step("a", needs=["a"])], "the steps form a cycle: a -> a"),
        ([step("a", agent="llm-proxy")], "step a: unknown agent 'llm-proxy'"),
        ([step("a", needs=["ghost"])], "step a needs unknown step 'ghost'"),
        ([step("a"), step("a")], "step ids are used twice: a"),
        ([step("a"), step("b", input={"x": {"$ref": "a"}})],
         "step b reads step a but does not wait for it"),
        ([step("a", input={"x": {"$ref": "ghost.input"}})], "step a reads unknown step 'ghost'"),
        ([step("a", input={"x": {"$eval": "1"}})], "unknown operator $eval"),
        ([step("a", input={"x": {"$ref": "input", "pointer": "no-slash"}})],
         "is not a JSON Pointer"),
        ([step("a", input={"x": {"$ref": "input", "$concat": []}})], "one operator per object"),
    ],
    ids=["cycle", "self", "not-an-agent", "unknown-need", "twice", "unwaited-read",
         "unknown-source", "operator", "pointer", "two-operators"],
)  # fmt: skip
def test_a_bad_definition_is_refused_naming_the_problem(
    steps: list[dict[str, Any]], named: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        DefinitionSpec.model_validate({"steps": steps})
    assert named in str(refused.value)


def test_the_cycle_is_named_in_order() -> None:
    with pytest.raises(ValidationError) as refused:
        DefinitionSpec.model_validate(
            {"steps": [step("a", needs=["b"]), step("b", needs=["a"]), step("c")]}
        )
    message = str(refused.value)
    assert "a -> b -> a" in message or "b -> a -> b" in message


def test_waves_run_independent_steps_together_in_the_definitions_order() -> None:
    spec = DefinitionSpec.model_validate({"steps": [
        step("z"), step("y", needs=["z"]), step("x", needs=["z"]), step("w", needs=["x", "y"]),
        step("v"),
    ]})  # fmt: skip
    assert [[s.id for s in wave] for wave in spec.levels()] == [["z", "v"], ["y", "x"], ["w"]]


def test_a_stored_definition_is_parsed_once_per_content() -> None:
    definition = builtin_definitions()["value-case"].model_dump(mode="json")
    reordered = dict(reversed(list(definition.items())))
    spec = stored(definition)
    assert stored(reordered) is spec
    assert [[step.id for step in wave] for wave in spec.levels()] == [
        [step.id for step in wave] for wave in builtin_definitions()["value-case"].levels()
    ]
    changed = {**definition, "description": "another"}
    assert stored(changed) is not spec


def test_the_builtin_definitions() -> None:
    builtins = builtin_definitions()
    assert sorted(builtins) == ["realization-review", "value-case"]
    waves = [[s.id for s in wave] for wave in builtins["value-case"].levels()]
    assert waves == [["opportunity"],
                     ["target-conservative", "target-expected", "target-optimistic"],
                     ["integrity"]]  # fmt: skip
    assert [[s.agent for s in wave] for wave in builtins["realization-review"].levels()] == [
        ["realization"],
        ["expansion"],
        ["integrity"],
    ]


DOCUMENTS = {
    "input": {"costs": {"one_time": "5"}, "a/b": {"~x": 1}},
    "find": {"benefits": [{"kpi": "dso", "baseline": 60, "note": "x"}], "more": [{"kpi": "csat"}]},
    "find.input": {"notes": "n"},
}


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ({"$ref": "input", "pointer": "/costs/one_time"}, "5"),
        ({"$ref": "input", "pointer": "/a~1b/~0x"}, 1),
        ({"$ref": "find", "pointer": "/benefits/0/kpi"}, "dso"),
        ({"$ref": "find.input"}, {"notes": "n"}),
        ({"$ref": "input", "pointer": "/horizon", "default": 3}, 3),
        ({"$concat": [{"$ref": "find", "pointer": "/benefits"},
                      {"$ref": "find", "pointer": "/more"}]},
         [{"kpi": "dso", "baseline": 60, "note": "x"}, {"kpi": "csat"}]),
        ({"$pick": ["kpi", "baseline"], "from": {"$ref": "find", "pointer": "/benefits"}},
         [{"kpi": "dso", "baseline": 60}]),
        ({"literal": [1, {"nested": {"$ref": "find.input", "pointer": "/notes"}}]},
         {"literal": [1, {"nested": "n"}]}),
    ],
)  # fmt: skip
def test_expressions_resolve(expression: Any, value: Any) -> None:
    assert resolve(expression, DOCUMENTS) == value


@pytest.mark.parametrize(
    ("expression", "named"),
    [
        ({"$ref": "input", "pointer": "/costs/annual"}, "input has nothing at /costs/annual"),
        ({"$ref": "find", "pointer": "/benefits/7"}, "find has nothing at /benefits/7"),
        ({"$concat": [{"$ref": "input", "pointer": "/costs"}]}, "is not a list"),
        ({"$pick": ["kpi"], "from": {"$ref": "input", "pointer": "/costs/one_time"}},
         "not an object"),
    ],
)  # fmt: skip
def test_a_missing_value_is_named(expression: Any, named: str) -> None:
    with pytest.raises(MappingError, match=named):
        resolve(expression, DOCUMENTS)


CHAIN = [{"id": "a", "agent": "opportunity"},
         {"id": "b", "agent": "target", "needs": ["a"]},
         {"id": "c", "agent": "target", "needs": ["a"]},
         {"id": "d", "agent": "integrity", "needs": ["b", "c"]}]  # fmt: skip
BEGAN = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def _record(attempts: int, start: str, end: str) -> dict[str, Any]:
    return {"output": {"x": 1}, "attempts": attempts, "started_at": start, "finished_at": end,
            "duration_ms": 5, "replayed": False}  # fmt: skip


def test_progress_is_the_engines_records_and_the_steps_under_way_are_derived() -> None:
    infos = [
        {"function_name": "step:a", "output": _record(1, "t1", "t2"), "error": None},
        {"function_name": "step:b", "output": _record(2, "t2", "t4"), "error": None},
        {"function_name": "finish:completed", "output": {"recorded": True}, "error": None},
    ]
    records = from_engine(infos)
    assert set(records) == {"a", "b"}  # the finish and the deliveries are not steps
    notes = {"c": {"status": "running", "attempts": 2, "error": "target answered 503: busy",
                   "started_at": "t5"}}  # fmt: skip
    steps = {s["id"]: s for s in view(CHAIN, notes, records, run_status="running",
                                      run_started_at=BEGAN)}  # fmt: skip
    assert steps["a"]["status"] == steps["b"]["status"] == "succeeded"
    assert steps["b"]["attempts"] == 2
    # c retries: its failed attempt's note stays, with its own start.
    assert (steps["c"]["status"], steps["c"]["attempts"], steps["c"]["started_at"]) == (
        "running", 2, "t5")  # fmt: skip
    assert steps["c"]["error"] == "target answered 503: busy"
    assert steps["d"]["status"] == "pending"  # it needs c
    # Nothing recorded yet: the first wave runs since the run began.
    (first, *rest) = view(CHAIN, {}, {}, run_status="running", run_started_at=BEGAN)
    assert (first["status"], first["attempts"], first["started_at"]) == (
        "running", 1, BEGAN.isoformat())  # fmt: skip
    assert {step["status"] for step in rest} == {"pending"}
    # The next wave started when the last step it needs ended.
    both = from_engine([{"function_name": f"step:{name}", "output": _record(1, "t1", end),
                         "error": None} for name, end in (("a", "t2"), ("b", "t3"), ("c", "t4"))])  # fmt: skip
    assert (
        view(CHAIN, {}, both, run_status="running", run_started_at=BEGAN)[3]["started_at"] == "t4"
    )


def test_a_step_checkpointed_before_records_existed_replays_as_its_output() -> None:
    """A run in flight across the deploy that introduced step records resumes: its earlier
    checkpoints hold the agent's output itself."""
    legacy = {"opportunities": [], "benefits": [], "extractor": "rules"}
    assert as_record(legacy)["output"] == legacy
    assert as_record(_record(2, "t1", "t2"))["attempts"] == 2
    (entry,) = from_engine([{"function_name": "step:a", "output": legacy, "error": None}]).values()
    assert (entry["status"], entry["attempts"], entry["duration_ms"]) == ("succeeded", 1, None)


def test_a_cancelled_runs_step_under_way_shows_cancelled_and_a_failed_record_its_error() -> None:
    records = from_engine([
        {"function_name": "step:a", "output": _record(1, "t1", "t2"), "error": None},
        {"function_name": "step:b", "output": None, "error": RuntimeError("target refused"),
         "completed_at_epoch_ms": 1_764_237_600_000},
    ])  # fmt: skip
    steps = view(CHAIN, {}, records, run_status="cancelled", run_started_at=BEGAN)
    assert [step["status"] for step in steps] == ["succeeded", "failed", "cancelled", "pending"]
    assert steps[1]["error"] == "target refused"
    assert steps[1]["finished_at"].startswith("2025-11-27T10:00:00")
    # A finished run's row is its whole progress: no derivation.
    final = view(CHAIN, {"a": {"status": "succeeded", "attempts": 1}}, {},
                 run_status="failed", run_started_at=BEGAN)  # fmt: skip
    assert [step["status"] for step in final] == ["succeeded", "pending", "pending", "pending"]


def test_a_webhook_signature_verifies_and_what_was_changed_or_replayed_does_not() -> None:
    secret = signing_secret("s" * 40, uuid.UUID(int=7))
    body = b'{"type":"workflow.completed"}'
    headers = signed_headers(secret, body, now=1_000_000)
    assert verify(secret, headers, body, now=1_000_010)
    assert not verify(secret, headers, body + b" ", now=1_000_010)  # the body changed
    assert not verify(secret, headers, body, now=1_000_000 + 301)  # too old: a replay
    assert not verify(signing_secret("s" * 40, uuid.UUID(int=8)), headers, body,
                      now=1_000_010)  # another webhook's secret  # fmt: skip
    assert not verify(secret, {**headers, "ValueCanvas-Timestamp": "1000001"}, body,
                      now=1_000_010)  # a timestamp moved  # fmt: skip


DRIVERS = [
    Driver("collections", "Faster collections", "dso", "days", "decrease", "annual_revenue",
           Decimal("0.0002191781"), "f", Decimal(30), Decimal(90), Decimal("0.20"),
           ("dso", "paid late")),
    Driver("support-resolution", "Faster resolution", "time to resolution", "hours", "decrease",
           "support_tickets_per_year", Decimal("2.5"), "f", Decimal(4), Decimal(72),
           Decimal("0.30"), ("tickets take",)),
    Driver("win-rate", "Higher win rate", "win rate", "percent", "increase", "annual_revenue",
           Decimal("0.005"), "f", Decimal(10), Decimal(40), Decimal("0.15"), ("win rate",)),
]  # fmt: skip
NOTES = ("Founded in 2012, the firm is growing. Invoices are paid late: DSO is 60 days. "
         "Support tickets take 24 hours.\nOur win rate is poor.")  # fmt: skip
ACCOUNT = Account(name="Acme", annual_revenue=Decimal(10_000_000))


def test_the_rules_find_each_pain_once_with_the_number_after_its_cue() -> None:
    found = rule_findings(NOTES, DRIVERS)
    assert found == [
        Finding("collections", "Invoices are paid late: DSO is 60 days.", Decimal(60)),
        Finding("support-resolution", "Support tickets take 24 hours.", Decimal(24)),
        Finding("win-rate", "Our win rate is poor.", None),  # 2012 is a year, not a measure
    ]


def test_findings_are_valued_by_the_catalogue_and_drivers_the_profile_cannot_value_skipped() -> (
    None
):
    found, skipped = opportunities(rule_findings(NOTES, DRIVERS), DRIVERS, ACCOUNT)
    assert [(o["kpi"], o["baseline"], o["target"], o["value_per_unit"], o["baseline_source"])
            for o in found] == [
        ("dso", Decimal("60.00"), Decimal("48.00"), Decimal("2191.78"), "notes"),
        # No number in the sentence: the typical midpoint, moved up 15 %.
        ("win rate", Decimal("25.00"), Decimal("28.75"), Decimal("50000.00"), "catalogue"),
    ]  # fmt: skip
    assert skipped == ["support-resolution: the account profile has no support_tickets_per_year"]


@pytest.mark.parametrize(
    ("answer", "named"),
    [
        ("The pains are DSO and tickets.", "the answer is not JSON"),
        ('{"opportunities": [{"driver": "collections"}]}', "does not match the schema"),
        ('{"opportunities": [{"driver": "churn", "quote": "DSO is 60 days", "baseline": 60}]}',
         "'churn' is not in the catalogue"),
        ('{"opportunities": [{"driver": "collections", "quote": "DSO is 90 days", "baseline": 90}]}',
         "quote is not a verbatim part of the notes"),
        ('{"opportunities": [{"driver": "collections", "quote": "DSO is 60 days", "baseline": 60},'
         ' {"driver": "collections", "quote": "paid late", "baseline": null}]}',
         "a driver is listed twice"),
        ('{"opportunities": [{"driver": "collections", "quote": "DSO", "baseline": 1e300}]}',
         "does not match the schema"),
    ],
)  # fmt: skip
def test_a_model_answer_that_fails_validation_is_named(answer: str, named: str) -> None:
    problem = parse_llm_answer(answer, NOTES, DRIVERS)
    assert isinstance(problem, str)
    assert named in problem


def test_a_valid_model_answer_becomes_findings() -> None:
    answer = ('{"opportunities": [{"driver": "collections", "quote": "Invoices are paid  late: '
              'DSO is 60 days.", "baseline": 60}]}')  # fmt: skip
    assert parse_llm_answer(answer, NOTES, DRIVERS) == [
        Finding("collections", "Invoices are paid  late: DSO is 60 days.", Decimal(60))
    ]
