"""The first steps on a new platform, before anyone can call the API: the first admin
(a user, their organization, its owner) and an API key. Run by the ``valuecanvas``
commands as service_role; each step is idempotent where it can be (a rerun finds the
user and the organization) and audited."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from valuecanvas.api_gateway import repository
from valuecanvas.api_gateway.keys import NewKey, generate_key
from valuecanvas.core.db import SERVICE_ROLE, Pool, caller_transaction
from valuecanvas.core.identity import Identity


class BootstrapError(Exception):
    pass


async def first_admin(
    pool: Pool, email: str, full_name: str | None, organization_name: str, slug: str
) -> tuple[uuid.UUID, uuid.UUID]:
    """The user (found by email, or created) as the owner of the organization (found by
    slug, or created). Returns (user id, organization id)."""
    async with caller_transaction(pool, SERVICE_ROLE) as connection:
        user = await connection.fetchval(
            "select id from public.users where lower(email) = lower($1)", email
        )
        if user is None:
            user = await connection.fetchval(
                "insert into public.users (id, email, full_name) values ($1, $2, $3) returning id",
                uuid.uuid4(),
                email,
                full_name,
            )
        organization = await connection.fetchval(
            "select id from public.organizations where slug = $1", slug
        )
        if organization is None:
            organization = await connection.fetchval(
                "insert into public.organizations (name, slug) values ($1, $2) returning id",
                organization_name,
                slug,
            )
            await repository.audit(
                connection, SERVICE_ROLE, organization, "organization.create", "organization",
                organization, None, {"slug": slug, "by": "valuecanvas create-admin"},
            )  # fmt: skip
        inserted = await connection.execute(
            """insert into public.organization_members
                 (organization_id, user_id, role, status, accepted_at)
               values ($1, $2, 'owner', 'active', now())
               on conflict (organization_id, user_id) do nothing""",
            organization,
            user,
        )
        if inserted.endswith(" 1"):
            await repository.audit(
                connection, SERVICE_ROLE, organization, "member.add", "user", user, None,
                {"role": "owner", "by": "valuecanvas create-admin"},
            )  # fmt: skip
    return user, organization


async def new_api_key(
    pool: Pool, slug: str, name: str, scopes: Sequence[str], expires_at: datetime | None
) -> tuple[uuid.UUID, NewKey]:
    """A key for the organization ``slug``: (its id, the key). The key is not stored."""
    new = generate_key()
    async with caller_transaction(pool, SERVICE_ROLE) as connection:
        organization = await connection.fetchval(
            "select id from public.organizations where slug = $1", slug
        )
        if organization is None:
            raise BootstrapError(f"no organization with slug {slug!r}")
        row = await repository.create_api_key(
            connection, organization, name, new.prefix, new.digest, scopes, expires_at, None
        )
        await repository.audit(
            connection, SERVICE_ROLE, organization, "api_key.create", "api_key", row["id"], None,
            {"name": name, "scopes": list(scopes), "prefix": new.prefix,
             "by": "valuecanvas create-api-key"},
        )  # fmt: skip
    return row["id"], new


def owner_identity(user: uuid.UUID, organization: uuid.UUID) -> Identity:
    return Identity(
        user_id=user, organization_id=organization, role="authenticated", via="user_token"
    )
