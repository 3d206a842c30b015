"""Upsell and cross-sell candidates ranked by expected value, computed by code.

For each product the customer does not own (and whose prerequisites they do), over the
KPIs it improves that the realization review covers:

    gap        = what is still missing of the KPI's target improvement, in KPI units, at the
                 better of realized and forecast (none once achieved)
    need       = how much the customer needs it: 1.0 at risk, 0.6 on track, 0.2 achieved
    value      = gap x the product's typical uplift x the KPI's value per unit x need

    expected value = the sum of value over its KPIs - its annual price

A product in a family the customer already owns is an upsell; any other, a cross-sell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

CENT = Decimal("0.01")
NEED = {"at_risk": Decimal("1.0"), "on_track": Decimal("0.6"), "achieved": Decimal("0.2")}


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    family: str
    improves_kpis: tuple[str, ...]
    typical_uplift: Decimal
    annual_price: Decimal
    prerequisites: tuple[str, ...]


@dataclass(frozen=True)
class KpiState:
    kpi: str
    status: Literal["achieved", "on_track", "at_risk"]
    gap: Decimal  # KPI units still missing (>= 0)
    value_per_unit: Decimal


@dataclass(frozen=True)
class Candidate:
    sku: str
    name: str
    kind: Literal["upsell", "cross_sell"]
    expected_value: Decimal
    gross_value: Decimal
    annual_price: Decimal
    kpis: list[str]
    rationale: str


def rank(
    products: Sequence[Product], owned: Sequence[str], kpis: Sequence[KpiState]
) -> list[Candidate]:
    owned_set = set(owned)
    families = {product.family for product in products if product.sku in owned_set}
    by_kpi = {state.kpi.lower(): state for state in kpis}
    candidates = []
    for product in products:
        if product.sku in owned_set or not set(product.prerequisites) <= owned_set:
            continue
        reasons, gross, touched = [], Decimal(0), []
        for kpi in product.improves_kpis:
            state = by_kpi.get(kpi.lower())
            if state is None:
                continue
            value = state.gap * product.typical_uplift * state.value_per_unit * NEED[state.status]
            touched.append(state.kpi)
            gross += value
            reasons.append(
                f"{state.kpi} ({state.status.replace('_', ' ')}, {state.gap.normalize():f} units short): "
                f"{product.typical_uplift:.0%} of the gap x {state.value_per_unit.normalize():f} a unit"
                f" x need {NEED[state.status]} = {value.quantize(CENT, ROUND_HALF_EVEN)}"
            )
        if not touched:
            continue
        expected = (gross - product.annual_price).quantize(CENT, ROUND_HALF_EVEN)
        candidates.append(Candidate(
            sku=product.sku, name=product.name,
            kind="upsell" if product.family in families else "cross_sell",
            expected_value=expected, gross_value=gross.quantize(CENT, ROUND_HALF_EVEN),
            annual_price=product.annual_price.quantize(CENT, ROUND_HALF_EVEN), kpis=touched,
            rationale="; ".join(reasons) + f"; minus {product.annual_price.quantize(CENT)} a year",
        ))  # fmt: skip
    return sorted(candidates, key=lambda candidate: (-candidate.expected_value, candidate.sku))
