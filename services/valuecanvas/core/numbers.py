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

from pydantic import AfterValidator, BeforeValidator, Field

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


def _whole(value: Any) -> Any:
    """JSON's integers, as JSON Schema reads them: 3 and 3.0 are one number. A string or a
    boolean is not one (lax int parsing would take "3" and true)."""
    if isinstance(value, (str, bool)):
        raise ValueError("must be a whole number, not a string or a boolean")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer, written 3 or 3.0; a field narrows it with Field(ge=..., le=...).
Whole = Annotated[int, BeforeValidator(_whole)]
# A count of things (0 to 10^9), with its bounds inside the type, so that an optional one
# (``Count | None``) still documents them.
Count = Annotated[int, Field(ge=0, le=1_000_000_000), BeforeValidator(_whole)]
