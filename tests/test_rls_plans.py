"""Row-level security keeps index scans: the plans (not the timings: those are in
`make bench-rls`) of each growing table's common access paths, as a caller whose query
names no organization, on tables seeded with enough rows for the planner to care.

Under 0003's policies the latest page of agent_audit_log was a sequential scan and a sort
(the organization came from `in (select <set-returning function>)`); a policy that brings
that back fails here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from tests.benchmarks.rls import TABLES, Seeded, Table, queries, seed
from tests.support.servers import Database
from valuecanvas.core.db import caller_transaction


@pytest.fixture
async def seeded(database: Database) -> AsyncIterator[Seeded]:
    owner = await asyncpg.connect(database.owner_dsn)
    try:
        yield await seed(owner, rows=20_000, organizations=40)
    finally:
        await owner.close()


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


async def plan_of(database: Database, seeded: Seeded, statement: str) -> list[dict[str, Any]]:
    pool = await asyncpg.create_pool(database.app_dsn, min_size=1, max_size=1)
    try:
        async with caller_transaction(pool, seeded.caller) as connection:
            explained = await connection.fetchval(f"explain (format json) {statement}")
    finally:
        await pool.close()
    return list(nodes(json.loads(explained)[0]["Plan"]))


def scans_of(plan: list[dict[str, Any]], table: str) -> list[tuple[str, str | None]]:
    return [
        (node["Node Type"], node.get("Index Name"))
        for node in plan
        if node.get("Relation Name") == table
    ]


@pytest.mark.parametrize("table", TABLES, ids=[table.name for table in TABLES])
async def test_rls_alone_reads_the_latest_page_and_a_row_by_id_through_an_index(
    table: Table, database: Database, seeded: Seeded
) -> None:
    paths = queries(table, seeded)
    latest = await plan_of(database, seeded, paths["latest page"][1])
    by_id = await plan_of(database, seeded, paths["by id"][1])

    # The latest page: the (organization_id, created_at) index, in its order (no Sort),
    # stopped by the LIMIT.
    assert scans_of(latest, table.name) == [("Index Scan", table.latest_index)], latest
    assert "Sort" not in {node["Node Type"] for node in latest}

    [(scan, index)] = scans_of(by_id, table.name)
    assert scan == "Index Scan", by_id
    assert index in table.id_indexes, by_id
    [condition] = [node["Index Cond"] for node in by_id if node.get("Index Name") == index]
    assert f"({table.id_column} = " in condition
