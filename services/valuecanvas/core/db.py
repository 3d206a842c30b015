"""The asyncpg pool and the caller transaction that row-level security relies on.

Every transaction made for a caller sets the Postgres role and the JWT claims with
transaction-local settings (``set_config(..., true)``), exactly as PostgREST does, so RLS
policies see the caller through ``auth.uid()`` / ``auth.jwt()`` and nothing carries over to
the next user of a pooled connection.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from valuecanvas.core.identity import DATABASE_ROLES, Identity
from valuecanvas.core.metrics import ServiceMetrics

Pool = asyncpg.Pool
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

_SET_CALLER = "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)"


async def create_pool(dsn: str, *, max_size: int, connect_timeout: float) -> Pool:
    """A lazily-connecting pool: the service starts even while the database is down, and
    ``/readyz`` reports it."""
    pool: Pool = await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=max_size,
        timeout=connect_timeout,
        command_timeout=60,
        max_inactive_connection_lifetime=300,
    )
    return pool


@asynccontextmanager
async def caller_transaction(
    pool: Pool, identity: Identity, *, metrics: ServiceMetrics | None = None
) -> AsyncIterator[Connection]:
    """One transaction in which Postgres acts as ``identity`` (role + claims)."""
    if identity.role not in DATABASE_ROLES:  # Identity is typed, but the role becomes SQL state.
        raise ValueError(f"role {identity.role!r} is not a database role")
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(_SET_CALLER, identity.role, json.dumps(identity.database_claims()))
        if metrics is not None:
            metrics.caller_transactions.labels(metrics.service, identity.role).inc()
        yield connection


# The role the services use for what no caller can do (and no policy can express); always
# with the organization written in the statement.
SERVICE_ROLE = Identity(
    user_id=None, organization_id=None, role="service_role", via="internal_token"
)


@asynccontextmanager
async def as_service_role(connection: Connection) -> AsyncIterator[Connection]:
    """Within the caller's transaction, act as service_role, then as the caller again."""
    previous = await connection.fetchval("select current_setting('role')")
    await connection.execute("select set_config('role', 'service_role', true)")
    yield connection
    # Not restored after an error: the transaction is aborted and rolled back whole.
    await connection.execute("select set_config('role', $1, true)", previous)


async def check_database(pool: Pool, timeout_seconds: float) -> None:
    """Raise if the database does not answer ``select 1`` within ``timeout_seconds``."""
    async with pool.acquire(timeout=timeout_seconds) as connection:
        await connection.fetchval("select 1", timeout=timeout_seconds)


async def visible_organizations(connection: Connection) -> list[asyncpg.Record]:
    """The organizations row-level security lets the connection's caller see, by name."""
    return list(await connection.fetch("select id, name from public.organizations order by name"))
