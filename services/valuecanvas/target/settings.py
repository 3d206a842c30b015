"""The target service's settings, read from the environment and validated at start."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, field_validator

from valuecanvas.catalogue import catalogue
from valuecanvas.core.settings import AgentSettings

SERVICE = catalogue()["target"]


class TargetSettings(AgentSettings):
    service_name: str = SERVICE.name
    port: int = SERVICE.port

    # The discount rate NPV uses when a request gives none.
    target_discount_rate: Decimal = Field(default=Decimal("0.10"), ge=0, lt=1)
    # Each scenario's share of every KPI's improvement, in the order they are reported.
    target_scenarios: dict[str, float] = Field(
        default_factory=lambda: {"conservative": 0.6, "expected": 1.0, "optimistic": 1.25}
    )

    @field_validator("target_scenarios")
    @classmethod
    def _sensible_factors(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("at least one scenario is needed")
        for name, factor in value.items():
            if not 0 < factor <= 5:
                raise ValueError(f"scenario {name!r}: the factor must be in (0, 5]")
        return value
