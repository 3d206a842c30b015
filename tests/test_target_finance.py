"""The target agent's numbers against textbook answers, and the cases that cannot be made."""

from __future__ import annotations

from decimal import Decimal

import pytest

from valuecanvas.target.finance import BenefitLine, Costs, ImpossibleCaseError, scenario

D = Decimal


def line(baseline: str, target: str, value: str, direction: str = "increase") -> BenefitLine:
    return BenefitLine("kpi", D(baseline), D(target), direction, D(value))  # type: ignore[arg-type]


def test_the_textbook_three_year_project() -> None:
    """1 000 invested now, 500 a year for three years, at 10 %: NPV 243.43 (= -1000 +
    500/1.1 + 500/1.21 + 500/1.331), IRR 23.38 %, payback two years, ROI 50 %."""
    result = scenario(
        "expected", D(1), [line("0", "1", "500")], Costs(D(1000), D(0)),
        horizon_years=3, discount_rate=D("0.10"),
    )  # fmt: skip

    assert result.cash_flows == (D("-1000.00"), D("500.00"), D("500.00"), D("500.00"))
    assert result.npv == D("243.43")
    assert result.irr == D("0.2338")
    assert result.payback_months == D("24.0")
    assert result.roi == D("0.5000")
    assert (result.total_benefit, result.total_cost, result.net_benefit) == (
        D("1500.00"), D("1000.00"), D("500.00"),
    )  # fmt: skip


def test_the_npv_convention_finance_relies_on() -> None:
    """numpy-financial's documented example: its ``npv`` takes the first value as year 0,
    undiscounted (unlike a spreadsheet's NPV), which finance.py's year-0 cost relies on;
    at the flows' IRR (28.09 %) the NPV is zero."""
    import numpy_financial as npf

    assert round(npf.irr([-100, 39, 59, 55, 20]), 4) == 0.2809
    assert abs(npf.npv(0.2809, [-100, 39, 59, 55, 20])) < 0.05


def test_a_decrease_is_an_improvement_and_scenarios_scale_it() -> None:
    lines = [line("10", "6", "2500", "decrease"), line("100", "110", "100")]  # 4 x 2500 + 10 x 100
    costs = Costs(D("12000"), D("2000"))

    conservative, expected = (
        scenario(name, factor, lines, costs, horizon_years=3, discount_rate=D("0.08"))
        for name, factor in (("conservative", D("0.5")), ("expected", D(1)))
    )

    assert expected.annual_benefit == D("11000.00")
    assert conservative.annual_benefit == D("5500.00")
    assert expected.payback_months == D("16.0")  # 12 000 / (9 000 / 12)
    assert conservative.payback_months == D("41.1")  # 12 000 / (3 500 / 12)
    assert expected.npv > conservative.npv


@pytest.mark.parametrize(
    ("lines", "costs", "field"),
    [
        ([], Costs(D(1), D(0)), "benefits"),
        ([line("5", "5", "10")], Costs(D(1), D(0)), "benefits.0.target"),
        ([line("5", "4", "10")], Costs(D(1), D(0)), "benefits.0.target"),
        ([line("5", "6", "0")], Costs(D(1), D(0)), "benefits.0.value_per_unit"),
        ([line("0", "1", "100")], Costs(D(-1), D(0)), "costs.one_time"),
        ([line("0", "1", "100")], Costs(D(0), D(0)), "costs"),
        ([line("0", "1", "100")], Costs(D(10), D(100)), "costs.annual"),
    ],
    ids=[
        "no benefit",
        "no improvement",
        "a worse target",
        "no value",
        "negative cost",
        "no cost",
        "never pays back",
    ],
)
def test_an_impossible_case_names_its_field(
    lines: list[BenefitLine], costs: Costs, field: str
) -> None:
    with pytest.raises(ImpossibleCaseError) as refused:
        scenario("expected", D(1), lines, costs, horizon_years=3, discount_rate=D("0.1"))

    assert refused.value.field == field


def test_no_one_time_cost_pays_back_at_once_with_no_irr() -> None:
    result = scenario(
        "expected", D(1), [line("0", "1", "100")], Costs(D(0), D(40)),
        horizon_years=2, discount_rate=D("0.1"),
    )  # fmt: skip

    assert result.payback_months == D("0.0")
    assert result.irr is None
    assert result.roi == D("1.5000")  # (200 - 80) / 80
