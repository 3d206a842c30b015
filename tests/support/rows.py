"""Rows the tests need before they can act: users, organizations and memberships, written
as the database owner (row-level security does not apply to it)."""

from __future__ import annotations

import uuid

import asyncpg


async def add_organization(
    owner: asyncpg.Connection, organization: uuid.UUID, name: str = "Acme"
) -> uuid.UUID:
    slug = f"{name.lower()}-{organization.hex[:8]}"
    await owner.execute(
        "insert into public.organizations (id, name, slug) values ($1, $2, $3)",
        organization,
        name,
        slug,
    )
    return organization


async def add_member(
    owner: asyncpg.Connection, organization: uuid.UUID, user: uuid.UUID, role: str = "member"
) -> uuid.UUID:
    """``user`` (created when new) as a member of ``organization`` with ``role``."""
    await owner.execute(
        "insert into public.users (id, email) values ($1, $2) on conflict (id) do nothing",
        user,
        f"{user.hex[:12]}@example.test",
    )
    await owner.execute(
        "insert into public.organization_members (organization_id, user_id, role, status)"
        " values ($1, $2, $3, 'active')",
        organization,
        user,
        role,
    )
    return user


async def fetch(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    """One query on a connection of its own (for a test that has no connection open)."""
    connection = await asyncpg.connect(dsn)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()
