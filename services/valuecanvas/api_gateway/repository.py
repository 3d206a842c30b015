"""All of the gateway's SQL.

The platform API runs as its caller (``caller_transaction``: row-level security decides
every row). Three steps no policy can express run as service_role inside the caller's
transaction, each after the caller's own statement has proved the right to it:
creating an organization (there is no organization to be an admin of yet), finding or
creating the user an invitation names (users are visible only to colleagues), and an API
key's service identity. The API-key lookup and ``last_used_at`` run as service_role:
they happen before any caller is known.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import asyncpg

from valuecanvas.core.db import SERVICE_ROLE, Connection, Pool, as_service_role, caller_transaction
from valuecanvas.core.identity import Identity

if TYPE_CHECKING:
    from valuecanvas.api_gateway.keys import ApiKey

_ROLE_BY_SCOPE = (("admin", "admin"), ("value-cases:write", "member"))


# API keys, before a caller is known.


async def api_key_by_digest(pool: Pool, digest: str) -> ApiKey | None:
    from valuecanvas.api_gateway.keys import ApiKey

    async with caller_transaction(pool, SERVICE_ROLE) as connection:
        row = await connection.fetchrow(
            """select k.id, k.organization_id, k.principal_id, k.scopes, k.expires_at,
                      k.revoked_at, o.status = 'active' as organization_active
               from public.api_keys k join public.organizations o on o.id = k.organization_id
               where k.key_hash = $1""",
            digest,
        )
    if row is None:
        return None
    return ApiKey(
        id=row["id"],
        organization_id=row["organization_id"],
        principal_id=row["principal_id"],
        scopes=frozenset(row["scopes"]),
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        organization_active=row["organization_active"],
    )


async def record_key_use(pool: Pool, uses: Mapping[UUID, datetime]) -> None:
    async with caller_transaction(pool, SERVICE_ROLE) as connection:
        await connection.execute(
            """update public.api_keys k set last_used_at = u.used_at
               from unnest($1::uuid[], $2::timestamptz[]) as u (id, used_at)
               where k.id = u.id and (k.last_used_at is null or k.last_used_at < u.used_at)""",
            list(uses),
            list(uses.values()),
        )


# The caller's standing.


async def acting_role(connection: Connection) -> str | None:
    """The caller's role in the organization their token names (active members only)."""
    role: str | None = await connection.fetchval("select private.acting_role()")
    return role


async def audit(
    connection: Connection,
    caller: Identity,
    organization: UUID,
    action: str,
    resource_type: str,
    resource_id: object,
    request_id: str | None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one audit_logs row, as the caller (the policy: as themself, in the acting
    organization)."""
    await connection.execute(
        """insert into public.audit_logs
             (organization_id, actor_user_id, action, resource_type, resource_id, details, request_id)
           values ($1, $2, $3, $4, $5, $6::jsonb, $7)""",
        organization,
        caller.user_id,
        action,
        resource_type,
        str(resource_id),
        json.dumps(dict(details or {})),
        request_id,
    )


# Keyset pagination: every list is ordered by a unique key, and the cursor is the last
# row's key.


async def list_organizations(
    connection: Connection, limit: int, after: tuple[datetime, UUID] | None
) -> list[asyncpg.Record]:
    return list(
        await connection.fetch(
            """select o.id, o.name, o.slug, o.plan, o.status, o.created_at,
                      m.role as my_role
               from public.organizations o
               join public.organization_members m
                 on m.organization_id = o.id and m.user_id = (select auth.uid())
               where ($2::timestamptz is null or (o.created_at, o.id) > ($2, $3))
               order by o.created_at, o.id limit $1""",
            limit,
            after[0] if after else None,
            after[1] if after else None,
        )
    )


async def create_organization(
    connection: Connection,
    caller: Identity,
    name: str,
    slug: str,
    email: str,
    request_id: str | None,
) -> asyncpg.Record:
    """The organization, its first owner (the caller) and the audit row, as service_role."""
    async with as_service_role(connection):
        await connection.execute(
            """insert into public.users (id, email) values ($1, $2)
               on conflict (id) do nothing""",
            caller.user_id,
            email,
        )
        row = await connection.fetchrow(
            """insert into public.organizations (name, slug) values ($1, $2)
               returning id, name, slug, plan, status, created_at""",
            name,
            slug,
        )
        assert row is not None
        await connection.execute(
            """insert into public.organization_members
                 (organization_id, user_id, role, status, invited_by, accepted_at)
               values ($1, $2, 'owner', 'active', $2, now())""",
            row["id"],
            caller.user_id,
        )
        await audit(
            connection, caller, row["id"], "organization.create", "organization", row["id"],
            request_id, {"slug": slug},
        )  # fmt: skip
    return row


async def rename_organization(
    connection: Connection, organization: UUID, name: str
) -> asyncpg.Record | None:
    return await connection.fetchrow(
        """update public.organizations set name = $2 where id = $1
           returning id, name, slug, plan, status, created_at""",
        organization,
        name,
    )


_MEMBER_COLUMNS = """m.user_id, u.email, u.full_name, u.kind, m.role, m.status,
                     m.invited_by, m.created_at, m.accepted_at"""


async def list_members(
    connection: Connection,
    organization: UUID,
    limit: int,
    after: tuple[datetime, UUID] | None,
    status: str | None,
) -> list[asyncpg.Record]:
    return list(
        await connection.fetch(
            f"""select {_MEMBER_COLUMNS}
                from public.organization_members m
                left join public.users u on u.id = m.user_id
                where m.organization_id = $1
                  and ($3::timestamptz is null or (m.created_at, m.user_id) > ($3, $4))
                  and ($5::text is null or m.status = $5)
                order by m.created_at, m.user_id limit $2""",  # noqa: S608 (constant columns)
            organization,
            limit,
            after[0] if after else None,
            after[1] if after else None,
            status,
        )
    )


async def member(connection: Connection, organization: UUID, user: UUID) -> asyncpg.Record | None:
    return await connection.fetchrow(
        f"""select {_MEMBER_COLUMNS}
            from public.organization_members m left join public.users u on u.id = m.user_id
            where m.organization_id = $1 and m.user_id = $2""",  # noqa: S608
        organization,
        user,
    )


async def user_by_email(connection: Connection, email: str) -> UUID | None:
    """The user with this email, if they have signed in once (their profile exists). As
    service_role: an admin cannot see users outside their organization."""
    async with as_service_role(connection):
        found: UUID | None = await connection.fetchval(
            "select id from public.users where lower(email) = lower($1) and kind = 'person'",
            email,
        )
    return found


async def own_profile(connection: Connection) -> asyncpg.Record | None:
    return await connection.fetchrow(
        """select id, email, full_name, kind, status, created_at from public.users
           where id = (select auth.uid())"""
    )


async def save_own_profile(
    connection: Connection, user: UUID, email: str, full_name: str | None
) -> asyncpg.Record:
    """Created on first call (the policy: one's own id only), the name changed after."""
    await connection.execute(
        """insert into public.users (id, email, full_name) values ($1, $2, $3)
           on conflict (id) do nothing""",
        user,
        email,
        full_name,
    )
    row = await connection.fetchrow(
        """update public.users set full_name = $2 where id = $1
           returning id, email, full_name, kind, status, created_at""",
        user,
        full_name,
    )
    assert row is not None
    return row


async def invite_member(connection: Connection, organization: UUID, user: UUID, role: str) -> None:
    await connection.execute(
        """insert into public.organization_members (organization_id, user_id, role)
           values ($1, $2, $3)""",
        organization,
        user,
        role,
    )


async def accept_invitation(connection: Connection, organization: UUID) -> bool:
    status = await connection.execute(
        """update public.organization_members set status = 'active'
           where organization_id = $1 and user_id = (select auth.uid()) and status = 'invited'""",
        organization,
    )
    return bool(status.endswith(" 1"))


async def change_role(connection: Connection, organization: UUID, user: UUID, role: str) -> bool:
    status = await connection.execute(
        """update public.organization_members set role = $3
           where organization_id = $1 and user_id = $2""",
        organization,
        user,
        role,
    )
    return bool(status.endswith(" 1"))


async def remove_member(connection: Connection, organization: UUID, user: UUID) -> bool:
    status = await connection.execute(
        "delete from public.organization_members where organization_id = $1 and user_id = $2",
        organization,
        user,
    )
    return bool(status.endswith(" 1"))


# Teams.

_TEAM_COLUMNS = "id, name, description, created_at"


async def list_teams(
    connection: Connection, organization: UUID, limit: int, after: tuple[str, UUID] | None
) -> list[asyncpg.Record]:
    return list(
        await connection.fetch(
            f"""select {_TEAM_COLUMNS} from public.teams
                where organization_id = $1 and ($3::text is null or (name, id) > ($3, $4))
                order by name, id limit $2""",  # noqa: S608
            organization,
            limit,
            after[0] if after else None,
            after[1] if after else None,
        )
    )


async def create_team(
    connection: Connection, organization: UUID, name: str, description: str | None
) -> asyncpg.Record:
    row = await connection.fetchrow(
        f"""insert into public.teams (organization_id, name, description) values ($1, $2, $3)
            returning {_TEAM_COLUMNS}""",  # noqa: S608
        organization,
        name,
        description,
    )
    assert row is not None
    return row


async def delete_team(connection: Connection, organization: UUID, team: UUID) -> bool:
    status = await connection.execute(
        "delete from public.teams where organization_id = $1 and id = $2", organization, team
    )
    return bool(status.endswith(" 1"))


async def team_exists(connection: Connection, organization: UUID, team: UUID) -> bool:
    return bool(
        await connection.fetchval(
            "select exists (select 1 from public.teams where organization_id = $1 and id = $2)",
            organization,
            team,
        )
    )


async def list_team_members(
    connection: Connection, organization: UUID, team: UUID, limit: int, after: UUID | None
) -> list[asyncpg.Record]:
    return list(
        await connection.fetch(
            """select user_id, role, created_at from public.team_members
               where organization_id = $1 and team_id = $2 and ($4::uuid is null or user_id > $4)
               order by user_id limit $3""",
            organization,
            team,
            limit,
            after,
        )
    )


async def add_team_member(
    connection: Connection, organization: UUID, team: UUID, user: UUID, role: str
) -> asyncpg.Record:
    row = await connection.fetchrow(
        """insert into public.team_members (team_id, organization_id, user_id, role)
           values ($1, $2, $3, $4) returning user_id, role, created_at""",
        team,
        organization,
        user,
        role,
    )
    assert row is not None
    return row


async def remove_team_member(
    connection: Connection, organization: UUID, team: UUID, user: UUID
) -> bool:
    status = await connection.execute(
        """delete from public.team_members
           where organization_id = $1 and team_id = $2 and user_id = $3""",
        organization,
        team,
        user,
    )
    return bool(status.endswith(" 1"))


# API keys.

_KEY_COLUMNS = """id, name, key_prefix, scopes, principal_id, created_by, created_at,
                  expires_at, last_used_at, revoked_at"""


async def list_api_keys(
    connection: Connection, organization: UUID, limit: int, after: tuple[datetime, UUID] | None
) -> list[asyncpg.Record]:
    return await _newest_first(connection, "api_keys", _KEY_COLUMNS, organization, limit, after)


async def _newest_first(
    connection: Connection,
    table: str,
    columns: str,
    organization: UUID,
    limit: int,
    after: tuple[datetime, UUID] | None,
) -> list[asyncpg.Record]:
    """An organization's rows of ``table`` (this module's constants), newest first, after
    the cursor (created_at, id)."""
    return list(
        await connection.fetch(
            f"""select {columns} from public.{table}
                where organization_id = $1
                  and ($3::timestamptz is null or (created_at, id) < ($3, $4))
                order by created_at desc, id desc limit $2""",  # noqa: S608
            organization,
            limit,
            after[0] if after else None,
            after[1] if after else None,
        )
    )


async def create_api_key(
    connection: Connection,
    organization: UUID,
    name: str,
    prefix: str,
    digest: str,
    scopes: Sequence[str],
    expires_at: datetime | None,
    creator: UUID | None,
) -> asyncpg.Record:
    """The key (as the caller: the policy admits the organization's admins), then its
    service identity, an active member with the role its scopes allow (as service_role)."""
    key = await connection.fetchrow(
        """insert into public.api_keys
             (organization_id, name, key_prefix, key_hash, scopes, expires_at, created_by)
           values ($1, $2, $3, $4, $5, $6, $7) returning id""",
        organization,
        name,
        prefix,
        digest,
        list(scopes),
        expires_at,
        creator,
    )
    assert key is not None
    role = next((role for scope, role in _ROLE_BY_SCOPE if scope in scopes), "viewer")
    async with as_service_role(connection):
        principal = await connection.fetchval(
            """insert into public.users (id, email, full_name, kind)
               values ($1, $2, $3, 'service') returning id""",
            uuid4(),
            f"api-key-{key['id']}@service.valuecanvas.invalid",
            f"API key: {name}"[:200],
        )
        await connection.execute(
            """insert into public.organization_members
                 (organization_id, user_id, role, status, invited_by, accepted_at)
               values ($1, $2, $3, 'active', $4, now())""",
            organization,
            principal,
            role,
            creator,
        )
        await connection.execute(
            "update public.api_keys set principal_id = $2 where id = $1", key["id"], principal
        )
    row = await connection.fetchrow(
        f"select {_KEY_COLUMNS} from public.api_keys where id = $1",  # noqa: S608
        key["id"],
    )
    assert row is not None
    return row


async def revoke_api_key(
    connection: Connection, organization: UUID, key: UUID
) -> asyncpg.Record | None:
    """Revoked (as the caller), and its identity's membership removed (as service_role);
    None if the caller sees no such key."""
    row = await connection.fetchrow(
        f"""update public.api_keys set revoked_at = coalesce(revoked_at, now())
            where organization_id = $1 and id = $2 returning {_KEY_COLUMNS}, key_hash""",  # noqa: S608
        organization,
        key,
    )
    if row is None:
        return None
    if row["principal_id"] is not None:
        async with as_service_role(connection):
            await connection.execute(
                """delete from public.organization_members
                   where organization_id = $1 and user_id = $2""",
                organization,
                row["principal_id"],
            )
    return row


# Webhooks.

_WEBHOOK_COLUMNS = "id, url, events, active, created_by, created_at"


async def list_webhooks(
    connection: Connection, organization: UUID, limit: int, after: tuple[datetime, UUID] | None
) -> list[asyncpg.Record]:
    return await _newest_first(connection, "webhooks", _WEBHOOK_COLUMNS, organization, limit, after)


async def create_webhook(
    connection: Connection,
    organization: UUID,
    webhook: UUID,
    url: str,
    events: Sequence[str],
    secret_hash: str,
    creator: UUID | None,
) -> asyncpg.Record:
    row = await connection.fetchrow(
        f"""insert into public.webhooks (id, organization_id, url, events, secret_hash, created_by)
            values ($1, $2, $3, $4, $5, $6) returning {_WEBHOOK_COLUMNS}""",  # noqa: S608
        webhook,
        organization,
        url,
        list(events),
        secret_hash,
        creator,
    )
    assert row is not None
    return row


async def delete_webhook(connection: Connection, organization: UUID, webhook: UUID) -> bool:
    status = await connection.execute(
        "delete from public.webhooks where organization_id = $1 and id = $2",
        organization,
        webhook,
    )
    return bool(status.endswith(" 1"))


# Notification preferences (the caller's own).


async def list_preferences(connection: Connection) -> list[asyncpg.Record]:
    return list(
        await connection.fetch(
            """select organization_id, channel, event_type, enabled, updated_at
               from public.notification_preferences where user_id = (select auth.uid())
               order by organization_id, channel, event_type"""
        )
    )


async def set_preference(
    connection: Connection, organization: UUID, channel: str, event_type: str, enabled: bool
) -> asyncpg.Record:
    row = await connection.fetchrow(
        """insert into public.notification_preferences
             (user_id, organization_id, channel, event_type, enabled)
           values ((select auth.uid()), $1, $2, $3, $4)
           on conflict (user_id, organization_id, channel, event_type)
           do update set enabled = excluded.enabled, updated_at = now()
           returning organization_id, channel, event_type, enabled, updated_at""",
        organization,
        channel,
        event_type,
        enabled,
    )
    assert row is not None
    return row


# The audit log, newest first.


async def list_audit(
    connection: Connection,
    organization: UUID,
    limit: int,
    before: int | None,
    action: str | None,
) -> list[asyncpg.Record]:
    return list(
        await connection.fetch(
            """select id, actor_user_id, action, resource_type, resource_id, details,
                      request_id, created_at
               from public.audit_logs
               where organization_id = $1 and ($3::bigint is null or id < $3)
                 and ($4::text is null or action = $4)
               order by id desc limit $2""",
            organization,
            limit,
            before,
            action,
        )
    )
