"""The realization agent: each KPI's realized value against its target, its trend, its
forecast at the period's end and its risk flags, from the value case's recorded
measurements (``tracking`` computes)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime
from decimal import Decimal

from valuecanvas.core.agent import Agent, AgentRunError, RunContext
from valuecanvas.core.state import get_state
from valuecanvas.realization import repository, tracking
from valuecanvas.realization.schemas import RealizationInput, RealizationOutput
from valuecanvas.realization.settings import RealizationSettings


async def review(context: RunContext, body: RealizationInput) -> RealizationOutput:
    settings = get_state(context.request).settings
    assert isinstance(settings, RealizationSettings)
    as_of = body.as_of or datetime.now(UTC).date()
    if not await repository.case_exists(context.connection, body.value_case_id):
        raise AgentRunError("value_case_id", "no such value case in your organization")
    rows = await repository.measurements(
        context.connection, body.value_case_id, [goal.kpi for goal in body.kpis],
        body.period_start, min(as_of, body.period_end),
    )  # fmt: skip
    by_kpi: dict[str, list[tuple[date, Decimal]]] = {}
    for row in rows:
        by_kpi.setdefault(row["kpi"], []).append((row["measured_on"], row["value"]))
    try:
        progress = [
            tracking.track(
                index,
                tracking.Goal(goal.kpi, goal.baseline, goal.target, goal.direction),
                by_kpi.get(goal.kpi, []),
                start=body.period_start,
                end=body.period_end,
                as_of=as_of,
                tolerance=body.tolerance,
                stale_days=settings.realization_stale_days,
            )
            for index, goal in enumerate(body.kpis)
        ]
    except tracking.ImpossibleTrackingError as exc:
        raise AgentRunError(exc.field_name, exc.message) from None
    at_risk = [item.kpi for item in progress if item.status == "at_risk"]
    overall = (
        "at_risk" if at_risk
        else "achieved" if all(item.status == "achieved" for item in progress)
        else "on_track"
    )  # fmt: skip
    return RealizationOutput.model_validate(
        {
            "value_case_id": body.value_case_id,
            "as_of": as_of,
            "status": overall,
            "at_risk": at_risk,
            "kpis": [
                {**asdict(item), "value_per_unit": goal.value_per_unit}
                for item, goal in zip(progress, body.kpis, strict=True)
            ],
        }
    )


REALIZATION = Agent(
    name="realization",
    input_model=RealizationInput,
    output_model=RealizationOutput,
    run=review,
    summary="Realized value against target per KPI: trend, forecast at period end, risk flags",
)
