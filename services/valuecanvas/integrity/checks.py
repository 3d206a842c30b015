"""The integrity agent's checks of a business case (the target agent's inputs and output,
with its narrative and claims), each a list of findings:

- ``recompute``: every number of every scenario is computed again from the inputs (with
  the output's own discount rate and scenario factors) and must be equal, to the cent;
- ``narrative``: every number written in the narrative (``$1.2M``, ``23.4%``, ``20.6``)
  must match a number of the case (an input or an output; a percentage against a ratio)
  within the tolerance: relative ``tolerance`` (0.5 % by default) or 0.01 absolute;
- ``citations``: every claim cites a source quote, found word for word (case and spacing
  aside) in the sources given;
- ``policies``: the organization's enabled ``policy_enforcement`` rules on the case's
  numbers, e.g. ``{"metric": "roi", "scenario": "expected", "op": "gt", "value": 3}`` with
  action ``warn`` (a warning: it needs approval) or ``block`` (a failure).

The verdict is ``fail`` if any finding fails, ``warn`` if any warns, else ``pass``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from valuecanvas.target import finance
from valuecanvas.target.schemas import TargetInput, TargetOutput

Severity = Literal["fail", "warn"]
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-+\u2212])?(?P<currency>[$€£])?(?P<digits>\d[\d,]*(?:\.\d+)?)"
    r"\s?(?P<scale>[kKmM]\b|bn\b|%)?"
)
_SCALES = {"k": Decimal(1000), "K": Decimal(1000), "m": Decimal(10**6), "M": Decimal(10**6),
           "bn": Decimal(10**9)}  # fmt: skip
_OPERATORS = {
    "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
}  # fmt: skip
METRICS = ("roi", "npv", "irr", "payback_months", "annual_benefit", "net_benefit")


@dataclass(frozen=True)
class Finding:
    check: Literal["recompute", "narrative", "citations", "policies"]
    severity: Severity
    message: str
    where: str | None = None


def recompute(inputs: TargetInput, output: TargetOutput) -> list[Finding]:
    lines = [finance.BenefitLine(b.kpi, b.baseline, b.target, b.direction, b.value_per_unit)
             for b in inputs.benefits]  # fmt: skip
    costs = finance.Costs(inputs.costs.one_time, inputs.costs.annual)
    findings = []
    for index, claimed in enumerate(output.scenarios):
        where = f"output.scenarios.{index}"
        try:
            again = finance.scenario(
                claimed.name, claimed.factor, lines, costs,
                horizon_years=output.horizon_years, discount_rate=output.discount_rate,
            )  # fmt: skip
        except finance.ImpossibleCaseError as exc:
            findings.append(Finding("recompute", "fail", f"{claimed.name}: {exc.message}", where))
            continue
        for name in ("annual_benefit", "total_benefit", "total_cost", "net_benefit", "roi", "npv",
                     "irr", "payback_months"):  # fmt: skip
            stated, computed = getattr(claimed, name), getattr(again, name)
            if stated != computed:
                findings.append(Finding(
                    "recompute", "fail",
                    f"{claimed.name} {name}: stated {stated}, computed {computed}", f"{where}.{name}",
                ))  # fmt: skip
        if list(claimed.cash_flows) != list(again.cash_flows):
            findings.append(Finding("recompute", "fail", f"{claimed.name}: cash flows differ",
                                    f"{where}.cash_flows"))  # fmt: skip
    if inputs.horizon_years != output.horizon_years:
        findings.append(Finding("recompute", "fail", "the horizon differs from the inputs'",
                                "output.horizon_years"))  # fmt: skip
    return findings


def numbers_in(text: str) -> list[tuple[str, Decimal, bool]]:
    """(as written, value, is a percentage) for every number in ``text``."""
    found = []
    for match in _NUMBER.finditer(text):
        try:
            value = Decimal(match["digits"].replace(",", ""))
        except InvalidOperation:  # pragma: no cover - the pattern admits digits only
            continue
        scale = match["scale"]
        if scale in _SCALES:
            value *= _SCALES[scale]
        if match["sign"] in ("-", "\u2212"):  # a hyphen, or the minus sign
            value = -value
        found.append((match.group(0).strip(), value, scale == "%"))
    return found


def case_numbers(inputs: TargetInput, output: TargetOutput) -> tuple[set[Decimal], set[Decimal]]:
    """(amounts, ratios) a narrative may quote."""
    amounts: set[Decimal] = {Decimal(output.horizon_years), Decimal(len(output.scenarios))}
    ratios: set[Decimal] = {output.discount_rate}
    for benefit in inputs.benefits:
        amounts |= {benefit.baseline, benefit.target, benefit.value_per_unit,
                    abs(benefit.target - benefit.baseline)}  # fmt: skip
    amounts |= {inputs.costs.one_time, inputs.costs.annual}
    for scenario in output.scenarios:
        amounts |= {scenario.annual_benefit, scenario.total_benefit, scenario.total_cost,
                    scenario.net_benefit, scenario.npv, scenario.payback_months, *scenario.cash_flows}  # fmt: skip
        ratios |= {scenario.roi, scenario.factor} | (
            {scenario.irr} if scenario.irr is not None else set()
        )
    return amounts, ratios


def _close(value: Decimal, candidates: Iterable[Decimal], tolerance: Decimal) -> bool:
    return any(
        abs(value - candidate) <= max(abs(candidate) * tolerance, Decimal("0.01"))
        for candidate in candidates
    )


def narrative(
    text: str, inputs: TargetInput, output: TargetOutput, tolerance: Decimal
) -> list[Finding]:
    amounts, ratios = case_numbers(inputs, output)
    findings = []
    for written, value, percentage in numbers_in(text):
        if percentage:
            matched = _close(value / 100, ratios, tolerance) or _close(value, amounts, tolerance)
        else:
            matched = _close(value, amounts, tolerance) or _close(value, ratios, tolerance)
        if not matched:
            findings.append(Finding(
                "narrative", "fail",
                f"{written!r} matches no number of the case (tolerance {tolerance:%} or 0.01)",
                "narrative",
            ))  # fmt: skip
    return findings


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def citations(claims: Sequence[tuple[str, str | None]], sources: Sequence[str]) -> list[Finding]:
    corpus = [_normal(source) for source in sources]
    findings = []
    for index, (claim, quote) in enumerate(claims):
        where = f"claims.{index}"
        if not quote or not quote.strip():
            findings.append(
                Finding("citations", "fail", f"claim {claim[:80]!r} cites no source", where)
            )
        elif corpus and not any(_normal(quote) in source for source in corpus):
            findings.append(Finding("citations", "fail",
                                    f"the quote for claim {claim[:80]!r} is in no source", where))  # fmt: skip
    return findings


def policies(output: TargetOutput, rules: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """Rules: rows of policy_enforcement (policy_key, action, rule) with rule
    ``{"metric", "scenario" (default expected), "op", "value", "message"?}``. A rule that
    holds gives a finding: ``block`` fails, ``warn`` warns, ``allow`` gives none."""
    findings = []
    scenarios = {scenario.name: scenario for scenario in output.scenarios}
    for row in rules:
        rule, key, action = row["rule"], row["policy_key"], row["action"]
        if action == "allow":
            continue
        metric, op = rule.get("metric"), rule.get("op")
        scenario = scenarios.get(rule.get("scenario", "expected"))
        if metric not in METRICS or op not in _OPERATORS or scenario is None:
            findings.append(
                Finding("policies", "warn", f"policy {key}: not a rule this agent reads")
            )
            continue
        stated = getattr(scenario, metric)
        try:
            limit = Decimal(str(rule.get("value")))
        except InvalidOperation:
            findings.append(Finding("policies", "warn", f"policy {key}: its value is not a number"))
            continue
        if stated is not None and _OPERATORS[op](stated, limit):
            message = rule.get("message") or f"{metric} {op} {limit}"
            findings.append(Finding(
                "policies", "fail" if action == "block" else "warn",
                f"policy {key}: {message} ({scenario.name} {metric} = {stated})",
                f"output.scenarios.{scenario.name}.{metric}",
            ))  # fmt: skip
    return findings


def verdict(findings: Sequence[Finding]) -> Literal["pass", "warn", "fail"]:
    if any(finding.severity == "fail" for finding in findings):
        return "fail"
    return "warn" if findings else "pass"
