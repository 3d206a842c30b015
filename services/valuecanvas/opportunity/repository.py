"""The opportunity agent's SQL: the value-driver catalogue it maps pains to."""

from __future__ import annotations

from valuecanvas.core.db import Connection
from valuecanvas.opportunity.extract import Driver


async def drivers(connection: Connection) -> list[Driver]:
    """The platform's drivers and the organization's own (its own replaces the platform's
    of the same id), in id order. Row-level security keeps other organizations' out."""
    rows = await connection.fetch(
        """select distinct on (driver) driver, name, kpi, unit, direction, value_basis,
                  value_factor, formula, typical_baseline_low, typical_baseline_high,
                  typical_improvement, keywords
             from public.value_drivers
            order by driver, organization_id nulls last"""
    )
    return [Driver(**{**dict(row), "keywords": tuple(row["keywords"])}) for row in rows]
