"""Decimal inputs whose OpenAPI schema says exactly what they accept.

Pydantic documents a Decimal as ``number`` or any ``string``; these say which strings (a
plain decimal: digits, an optional point and fraction, a sign where negatives are allowed)
and which numbers (the bounds), and round what they accept to their places, so a value
the document calls valid is never refused. A field narrows the bounds further with its
own ``Field(le=...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, Field

_UNSIGNED_12 = r"^\d{1,12}(\.\d+)?$"
_SIGNED_12 = r"^[-+]?\d{1,12}(\.\d+)?$"
_FRACTION = r"^[01](\.\d+)?$"


def _strings(pattern: str) -> Callable[[dict[str, Any]], None]:
    def document(schema: dict[str, Any]) -> None:
        for branch in schema.get("anyOf", []):
            if branch.get("type") == "string":
                branch["pattern"] = pattern

    return document


def _places(places: int) -> AfterValidator:
    quantum = Decimal(1).scaleb(-places)
    return AfterValidator(lambda value: value.quantize(quantum, rounding=ROUND_HALF_EVEN))


# Money and other amounts: 0 to 10^12, to the millionth.
Amount = Annotated[
    Decimal,
    Field(ge=0, le=Decimal("1e12"), allow_inf_nan=False, json_schema_extra=_strings(_UNSIGNED_12)),
    _places(6),
]
# A KPI's value: -10^12 to 10^12, to the millionth.
Measure = Annotated[
    Decimal,
    Field(ge=Decimal("-1e12"), le=Decimal("1e12"), allow_inf_nan=False,
          json_schema_extra=_strings(_SIGNED_12)),
    _places(6),
]  # fmt: skip
# A rate or share: 0 to 1, to four places.
Fraction = Annotated[
    Decimal,
    Field(ge=0, le=1, allow_inf_nan=False, json_schema_extra=_strings(_FRACTION)),
    _places(4),
]
# Any decimal up to 10^15 either way, as it is (an output, which the integrity agent is
# given back as an input).
Number = Annotated[
    Decimal,
    Field(ge=Decimal("-1e15"), le=Decimal("1e15"), allow_inf_nan=False,
          json_schema_extra=_strings(r"^[-+]?\d{1,15}(\.\d+)?$")),
]  # fmt: skip
