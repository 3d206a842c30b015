"""All of the realization service's SQL, run as the caller (row-level security decides)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from uuid import UUID

import asyncpg

from valuecanvas.core.db import Connection


async def measurements(
    connection: Connection, case: UUID, kpis: Sequence[str], start: date, until: date
) -> list[asyncpg.Record]:
    return list(
        await connection.fetch(
            """select kpi, measured_on, value from public.kpi_measurements
               where organization_id = (select private.acting_organization_id())
                 and value_case_id = $1 and kpi = any($2::text[])
                 and measured_on between $3 and $4
               order by kpi, measured_on""",
            case,
            list(kpis),
            start,
            until,
        )
    )


async def case_exists(connection: Connection, case: UUID) -> bool:
    return bool(
        await connection.fetchval(
            """select exists (select 1 from public.value_cases
               where organization_id = (select private.acting_organization_id()) and id = $1)""",
            case,
        )
    )


async def record(
    connection: Connection,
    organization: UUID,
    case: UUID,
    kpi: str,
    measured_on: date,
    value: Decimal,
    source: str | None,
) -> asyncpg.Record:
    """A measurement; a second one for the same KPI and day corrects the first."""
    row = await connection.fetchrow(
        """insert into public.kpi_measurements
             (organization_id, value_case_id, kpi, measured_on, value, source)
           values ($1, $2, $3, $4, $5, $6)
           on conflict (value_case_id, kpi, measured_on)
           do update set value = excluded.value, source = excluded.source
           returning id, value_case_id, kpi, measured_on, value, source""",
        organization,
        case,
        kpi,
        measured_on,
        value,
        source,
    )
    assert row is not None
    return row
