"""Finding pains in discovery notes and mapping them to value drivers.

Two extractors give the same kind of finding (a driver, the sentence that names the pain,
and the baseline the sentence states, if any):

- ``llm_findings``: the LLM, asked for a JSON-schema answer. The answer is validated (known
  drivers, each once; quotes found verbatim in the notes; baselines in range); an invalid
  answer is asked again once, with what was wrong, then reported.
- ``rule_findings``: the catalogue's cue phrases, sentence by sentence, and the number
  nearest after the cue. Deterministic: what the offline provider's runs use.

Everything numeric after that (targets, value per unit) is computed by ``opportunities``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from valuecanvas.opportunity.schemas import Account, quantize

_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)", re.M)
_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")


@dataclass(frozen=True)
class Driver:
    driver: str
    name: str
    kpi: str
    unit: str
    direction: str
    value_basis: str
    value_factor: Decimal
    formula: str
    typical_baseline_low: Decimal
    typical_baseline_high: Decimal
    typical_improvement: Decimal
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Finding:
    driver: str
    quote: str
    baseline: Decimal | None


def normal(text: str) -> str:
    return " ".join(text.lower().split())


def sentences(notes: str) -> list[str]:
    return [part.strip() for part in _SENTENCE.findall(notes) if part.strip()]


def _number_after(sentence: str, position: int) -> Decimal | None:
    numbers = [(match.start(), match.group(0)) for match in _NUMBER.finditer(sentence)]
    after = [text for start, text in numbers if start >= position]
    before = [text for start, text in numbers if start < position]
    for text in after + before[::-1]:
        value = Decimal(text.replace(",", ""))
        if "." not in text and 1900 <= value <= 2100:  # a year, not a measure
            continue
        return value
    return None


def rule_findings(notes: str, drivers: list[Driver]) -> list[Finding]:
    found = []
    parts = sentences(notes)
    for driver in drivers:
        for sentence in parts:
            lowered = sentence.lower()
            cues = [lowered.find(cue.lower()) for cue in driver.keywords]
            hits = [position for position in cues if position >= 0]
            if hits:
                found.append(Finding(driver.driver, sentence, _number_after(sentence, min(hits))))
                break
    return found


class _LlmOpportunity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    driver: str
    quote: str = Field(min_length=1, max_length=2000)
    baseline: float | None = Field(default=None, ge=-1e12, le=1e12, allow_inf_nan=False)


class _LlmAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    opportunities: list[_LlmOpportunity] = Field(max_length=50)

    @field_validator("opportunities")
    @classmethod
    def _each_driver_once(cls, value: list[_LlmOpportunity]) -> list[_LlmOpportunity]:
        drivers = [item.driver for item in value]
        if len(drivers) != len(set(drivers)):
            raise ValueError("a driver is listed twice")
        return value


def response_format(drivers: list[Driver]) -> dict[str, Any]:
    item = {
        "type": "object",
        "properties": {
            "driver": {"type": "string", "enum": [driver.driver for driver in drivers]},
            "quote": {"type": "string", "description": "the sentence of the notes, verbatim"},
            "baseline": {"type": ["number", "null"], "description": "the KPI's value now"},
        },
        "required": ["driver", "quote", "baseline"],
        "additionalProperties": False,
    }
    schema = {
        "type": "object",
        "properties": {"opportunities": {"type": "array", "items": item}},
        "required": ["opportunities"],
        "additionalProperties": False,
    }
    return {"type": "json_schema",
            "json_schema": {"name": "opportunities", "strict": True, "schema": schema}}  # fmt: skip


def prompt(account: Account, notes: str, drivers: list[Driver]) -> list[dict[str, str]]:
    catalogue = "\n".join(
        f"- {d.driver}: {d.name} (KPI {d.kpi}, in {d.unit}; cues: {', '.join(d.keywords)})"
        for d in drivers
    )
    return [
        {"role": "system", "content":
            "You find a customer's pains in discovery notes and map each to one value driver "
            "of the catalogue. Answer JSON only, as the schema says. For each pain: the "
            "driver's id, the sentence of the notes that states it, copied exactly, and the "
            "KPI's current value if the sentence states it (else null). List a driver at "
            "most once; leave out drivers the notes do not support.\n\nCatalogue:\n"
            + catalogue},
        {"role": "user", "content":
            f"Account: {account.name} ({account.industry or 'industry not given'}).\n\n"
            f"Discovery notes:\n{notes}"},
    ]  # fmt: skip


def parse_llm_answer(text: str, notes: str, drivers: list[Driver]) -> list[Finding] | str:
    """The findings of a model's answer, or what is wrong with it (in words, for the retry)."""
    try:
        answer = _LlmAnswer.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        return f"the answer is not JSON ({exc.msg})"
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()
        )
        return f"the answer does not match the schema: {problems}"
    known = {driver.driver for driver in drivers}
    corpus = normal(notes)
    findings = []
    for index, item in enumerate(answer.opportunities):
        if item.driver not in known:
            return f"opportunities.{index}.driver: {item.driver!r} is not in the catalogue"
        if normal(item.quote) not in corpus:
            return f"opportunities.{index}.quote is not a verbatim part of the notes"
        baseline = None
        if item.baseline is not None:
            try:
                baseline = Decimal(str(item.baseline))
            except InvalidOperation:  # pragma: no cover - a finite float always converts
                return f"opportunities.{index}.baseline is not a number"
        findings.append(Finding(item.driver, item.quote.strip(), baseline))
    return findings


def opportunities(
    findings: list[Finding], drivers: list[Driver], account: Account
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each finding valued: the baseline (stated, or the driver's typical midpoint), the
    target (moved by the typical improvement), and the value per unit (the account's basis
    times the factor). Drivers the profile cannot value are skipped, with the reason."""
    by_id = {driver.driver: driver for driver in drivers}
    profile = account.model_dump()
    found, skipped = [], []
    for finding in findings:
        driver = by_id[finding.driver]
        basis = profile.get(driver.value_basis)
        if basis is None:
            skipped.append(f"{driver.driver}: the account profile has no {driver.value_basis}")
            continue
        stated = finding.baseline is not None and finding.baseline > 0
        baseline = quantize(
            finding.baseline if stated and finding.baseline is not None
            else (driver.typical_baseline_low + driver.typical_baseline_high) / 2
        )  # fmt: skip
        change = baseline * driver.typical_improvement
        target = baseline - change if driver.direction == "decrease" else baseline + change
        if driver.unit == "percent":
            target = min(target, Decimal(100))
        found.append({
            "driver": driver.driver, "name": driver.name, "kpi": driver.kpi, "unit": driver.unit,
            "direction": driver.direction, "baseline": baseline,
            "baseline_source": "notes" if stated else "catalogue", "target": quantize(target),
            "value_per_unit": quantize(Decimal(str(basis)) * driver.value_factor),
            "formula": driver.formula, "quote": finding.quote,
        })  # fmt: skip
    return found, skipped
