"""Realized value against the business case's targets, computed by code.

For each KPI, from its measurements over the period (oldest first):

- realized: the latest value's improvement on the baseline (in the direction that is
  better), as a share of the target's improvement;
- expected by now: the share of the period elapsed (a straight line from baseline to
  target);
- trend: a least-squares line through the measurements (numpy), per 30 days;
- forecast: that line at the period's end, as a share of the target's improvement;
- flags: ``behind_plan`` (realized below expected by more than the tolerance),
  ``forecast_short`` (the forecast below the target by more than the tolerance),
  ``wrong_direction`` (the trend moves away from the target), ``stale`` (no measurement
  in the last ``stale_days``), ``no_measurements``.

A KPI with any flag is at risk; one whose realized share reaches 1 is achieved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

import numpy as np

SHARE = Decimal("0.0001")
Status = Literal["achieved", "on_track", "at_risk"]


class ImpossibleTrackingError(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name, self.message = field_name, message


@dataclass(frozen=True)
class Goal:
    kpi: str
    baseline: Decimal
    target: Decimal
    direction: Literal["increase", "decrease"]

    @property
    def sign(self) -> int:
        return 1 if self.direction == "increase" else -1


@dataclass(frozen=True)
class Progress:
    kpi: str
    status: Status
    measurements: int
    latest_value: Decimal | None
    latest_on: date | None
    realized_share: Decimal | None
    expected_share: Decimal
    trend_per_30_days: Decimal | None
    forecast_value: Decimal | None
    forecast_share: Decimal | None
    flags: list[str] = field(default_factory=list)
    remaining_gap: Decimal = Decimal(0)  # KPI units still missing of the improvement aimed at


def _share(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(SHARE, rounding=ROUND_HALF_EVEN)


def track(
    index: int,
    goal: Goal,
    points: list[tuple[date, Decimal]],
    *,
    start: date,
    end: date,
    as_of: date,
    tolerance: Decimal,
    stale_days: int,
) -> Progress:
    wanted = goal.sign * (goal.target - goal.baseline)
    if wanted <= 0:
        raise ImpossibleTrackingError(
            f"kpis.{index}.target", f"{goal.kpi}: the target is not an improvement on the baseline"
        )
    length = (end - start).days
    expected = _share(min(max((as_of - start).days / length, 0.0), 1.0))
    if not points:
        return Progress(goal.kpi, "at_risk", 0, None, None, None, expected, None, None, None,
                        ["no_measurements"], wanted)  # fmt: skip
    points = sorted(points)
    latest_on, latest = points[-1]
    realized = _share(goal.sign * (latest - goal.baseline) / wanted)
    flags = []
    if realized < expected - tolerance:
        flags.append("behind_plan")
    trend = forecast_value = forecast_share = None
    if len(points) >= 2:
        days = np.array([(on - start).days for on, _ in points], dtype=float)
        values = np.array([float(value) for _, value in points])
        slope, intercept = (float(part) for part in np.polyfit(days, values, 1))
        trend = Decimal(str(round(slope * 30, 6)))
        forecast_value = Decimal(str(round(intercept + slope * length, 6)))
        forecast_share = _share(goal.sign * (forecast_value - goal.baseline) / wanted)
        if forecast_share < 1 - tolerance:
            flags.append("forecast_short")
        if goal.sign * slope < 0:
            flags.append("wrong_direction")
    if (as_of - latest_on).days > stale_days:
        flags.append("stale")
    status: Status = "achieved" if realized >= 1 else "at_risk" if flags else "on_track"
    remaining = max(Decimal(0), goal.sign * (goal.target - latest))
    return Progress(goal.kpi, status, len(points), latest, latest_on, realized, expected,
                    trend, forecast_value, forecast_share, flags, remaining)  # fmt: skip
