"""The gateway's platform API, in process against a real Postgres (and Redis where the
limits are the point): authentication and scopes, organizations, members, teams, API keys,
webhooks, preferences, the audit trail, cursors, and hostile input."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.rows import add_member, add_organization
from tests.support.servers import Database, RedisServer
from tests.support.tokens import JWT_SECRET, bearer
from tests.test_service_apps import INTERNAL_SECRET, settings_for
from tests.test_settings_and_cli import run_cli
from valuecanvas.core.webhooks import signing_secret
from valuecanvas.registry import SERVICES

ORG_A, ORG_B = uuid.uuid4(), uuid.uuid4()
OWNER_A, ADMIN_A, MEMBER_A, VIEWER_A, ADMIN_B, OUTSIDER = (uuid.uuid4() for _ in range(6))


def gateway(dsn: str, **overrides: Any) -> TestClient:
    settings = settings_for("api-gateway", dsn, gateway_api_key_cache_seconds=0, **overrides)
    return TestClient(SERVICES["api-gateway"].create_app(settings))


async def _seed(dsn: str) -> None:
    owner = await asyncpg.connect(dsn)
    try:
        await add_organization(owner, ORG_A, "Alpha")
        await add_organization(owner, ORG_B, "Beta")
        await add_member(owner, ORG_A, OWNER_A, "owner")
        await add_member(owner, ORG_A, ADMIN_A, "admin")
        await add_member(owner, ORG_A, MEMBER_A, "member")
        await add_member(owner, ORG_A, VIEWER_A, "viewer")
        await add_member(owner, ORG_B, ADMIN_B, "owner")
        await owner.execute(
            "insert into public.users (id, email) values ($1, 'outsider@example.test')", OUTSIDER
        )
    finally:
        await owner.close()


@pytest.fixture
def seeded(database: Database) -> Iterator[Database]:
    asyncio.run(_seed(database.owner_dsn))
    return database


def as_(user: uuid.UUID, organization: uuid.UUID | None = ORG_A) -> dict[str, str]:
    return bearer(user, organization, email=f"{user.hex[:12]}@example.test")


def rows(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(dsn)
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()

    return asyncio.run(fetch())


def make_key(client: TestClient, scopes: list[str], **extra: Any) -> dict[str, Any]:
    response = client.post(
        f"/v1/organizations/{ORG_A}/api-keys",
        json={"name": "ci", "scopes": scopes, **extra},
        headers=as_(ADMIN_A),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# Authentication and scopes.


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing credentials"),
        ({"Authorization": "Basic abc"}, "Authorization must be 'Bearer <token or API key>'"),
        ({"Authorization": "Bearer not-a-jwt"}, "malformed token"),
        ({"X-API-Key": "vc_12345678_" + "x" * 43}, "unknown API key"),
        ({"X-API-Key": "vc_short"}, "malformed API key"),
    ],
)
def test_who_are_you_is_401_with_a_problem(
    seeded: Database, headers: dict[str, str], reason: str
) -> None:
    with gateway(seeded.app_dsn) as client:
        response = client.get(f"/v1/organizations/{ORG_A}/members", headers=headers)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == reason
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_an_api_key_is_shown_once_stored_as_its_hash_and_acts_as_its_organization(
    seeded: Database,
) -> None:
    with gateway(seeded.app_dsn) as client:
        created = make_key(client, ["value-cases:read"])
        key = created["key"]
        listed = client.get(f"/v1/organizations/{ORG_A}/api-keys", headers=as_(ADMIN_A)).json()
        members = client.get(
            f"/v1/organizations/{ORG_A}/members", headers={"X-API-Key": key}
        ).json()
        whoami = client.get("/v1/whoami", headers={"Authorization": f"Bearer {key}"})

    assert key.startswith(created["key_prefix"] + "_")
    assert created["key_prefix"].startswith("vc_")
    assert all("key" not in item for item in listed["data"])
    stored = rows(seeded.owner_dsn, "select key_hash, principal_id from public.api_keys")
    assert stored[0]["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in str(rows(seeded.owner_dsn, "select * from public.api_keys"))
    # Its service identity: a member of A with the role its scopes allow, and nothing of B.
    identity = {m["user_id"]: m for m in members["data"]}[str(stored[0]["principal_id"])]
    assert (identity["kind"], identity["role"], identity["status"]) == (
        "service",
        "viewer",
        "active",
    )
    assert whoami.json()["organizations"] == [{"id": str(ORG_A), "name": "Alpha"}]


def test_the_wrong_scope_is_403_naming_it_and_changes_nothing(seeded: Database) -> None:
    with gateway(seeded.app_dsn) as client:
        key = make_key(client, ["value-cases:read"])["key"]
        response = client.post(
            f"/v1/organizations/{ORG_A}/teams", json={"name": "Sales"}, headers={"X-API-Key": key}
        )

    assert response.status_code == 403
    assert (response.json()["code"], response.json()["param"]) == ("insufficient_scope", "admin")
    assert rows(seeded.owner_dsn, "select * from public.teams") == []


def test_a_revoked_or_expired_key_is_refused(seeded: Database) -> None:
    with gateway(seeded.app_dsn) as client:
        created = make_key(client, ["admin"])
        key = created["key"]
        first = client.get(f"/v1/organizations/{ORG_A}/teams", headers={"X-API-Key": key})
        assert first.status_code == 200, first.text
        revoked = client.post(
            f"/v1/organizations/{ORG_A}/api-keys/{created['id']}/revoke", headers=as_(ADMIN_A)
        )
        after = client.get(f"/v1/organizations/{ORG_A}/teams", headers={"X-API-Key": key})
        expired = make_key(client, ["admin"])
        rows(
            seeded.owner_dsn,
            "update public.api_keys set created_at = now() - interval '2 days',"
            " expires_at = now() - interval '1 day' where id = $1",
            uuid.UUID(expired["id"]),
        )
        late = client.get(f"/v1/organizations/{ORG_A}/teams", headers={"X-API-Key": expired["key"]})

    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert (after.status_code, after.json()["detail"]) == (401, "API key revoked")
    assert (late.status_code, late.json()["detail"]) == (401, "API key expired")
    # The revoked key's identity is no longer a member: the database refuses it too.
    principal = rows(
        seeded.owner_dsn, "select principal_id from public.api_keys where id = $1",
        uuid.UUID(created["id"]),
    )[0]["principal_id"]  # fmt: skip
    assert (
        rows(
            seeded.owner_dsn,
            "select 1 from public.organization_members where user_id = $1",
            principal,
        )
        == []
    )


def test_last_used_at_is_written_in_batches(seeded: Database) -> None:
    with gateway(seeded.app_dsn, gateway_last_used_flush_seconds=300) as client:
        created = make_key(client, ["value-cases:read"])
        for _ in range(3):
            client.get(f"/v1/organizations/{ORG_A}/teams", headers={"X-API-Key": created["key"]})
        before = rows(seeded.owner_dsn, "select last_used_at from public.api_keys")
    after = rows(seeded.owner_dsn, "select last_used_at from public.api_keys")

    assert before[0]["last_used_at"] is None  # not written on the request path
    assert after[0]["last_used_at"] is not None  # written by the flush at shutdown


# Organizations and members.


def test_a_user_creates_an_organization_and_owns_it(seeded: Database) -> None:
    with gateway(seeded.app_dsn) as client:
        created = client.post(
            "/v1/organizations",
            json={"name": "Gamma", "slug": "gamma"},
            headers=as_(OUTSIDER, None),
        )
        again = client.post(
            "/v1/organizations",
            json={"name": "Gamma", "slug": "gamma"},
            headers=as_(OUTSIDER, None),
        )
        assert created.status_code == 201, created.text
        organization = created.json()["id"]
        listed = client.get("/v1/organizations", headers=as_(OUTSIDER, None))

    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/v1/organizations/{organization}"
    assert again.status_code == 409
    assert [o["slug"] for o in listed.json()["data"]] == ["gamma"]
    audit = rows(
        seeded.owner_dsn, "select action, actor_user_id, request_id from public.audit_logs"
    )
    assert [(a["action"], a["actor_user_id"]) for a in audit] == [("organization.create", OUTSIDER)]
    assert audit[0]["request_id"] == created.headers["x-request-id"]


def test_membership_flows_through_an_invitation(seeded: Database) -> None:
    with gateway(seeded.app_dsn) as client:
        invited = client.post(
            f"/v1/organizations/{ORG_A}/members",
            json={"email": "outsider@example.test", "role": "member"},
            headers=as_(ADMIN_A),
        )
        premature = client.get(f"/v1/organizations/{ORG_A}/teams", headers=as_(OUTSIDER))
        accepted = client.post(
            f"/v1/organizations/{ORG_A}/invitation/accept", headers=as_(OUTSIDER)
        )
        promoted = client.patch(
            f"/v1/organizations/{ORG_A}/members/{OUTSIDER}", json={"role": "admin"},
            headers=as_(ADMIN_A),
        )  # fmt: skip
        member_tries = client.patch(
            f"/v1/organizations/{ORG_A}/members/{VIEWER_A}", json={"role": "admin"},
            headers=as_(MEMBER_A),
        )  # fmt: skip
        admin_tries_owner = client.patch(
            f"/v1/organizations/{ORG_A}/members/{OWNER_A}", json={"role": "member"},
            headers=as_(ADMIN_A),
        )  # fmt: skip
        removed = client.delete(
            f"/v1/organizations/{ORG_A}/members/{OUTSIDER}", headers=as_(ADMIN_A)
        )
        last_owner = client.delete(
            f"/v1/organizations/{ORG_A}/members/{OWNER_A}", headers=as_(OWNER_A)
        )

    assert invited.status_code == 201
    assert invited.json()["status"] == "invited"
    assert premature.status_code == 403
    assert premature.json()["code"] == "not_a_member"
    assert accepted.status_code == 200
    assert accepted.json()["status"] == "active"
    assert promoted.json()["role"] == "admin"
    assert (member_tries.status_code, member_tries.json()["detail"]) == (
        403, "this needs the admin role (yours: member)",
    )  # fmt: skip
    assert admin_tries_owner.status_code == 404  # owners' rows are not the admin's to change
    assert removed.status_code == 204
    assert last_owner.status_code == 409
    actions = [
        r["action"]
        for r in rows(seeded.owner_dsn, "select action from public.audit_logs order by id")
    ]
    assert actions == ["member.invite", "member.accept", "member.role_change", "member.remove"]


def test_every_call_across_organizations_is_refused_or_sees_nothing(seeded: Database) -> None:
    with gateway(seeded.app_dsn) as client:
        assert_cross_organization_calls_refused(client, seeded.owner_dsn)


def assert_cross_organization_calls_refused(client: httpx.Client, owner_dsn: str) -> None:
    """B's admin (with B's token, with a token naming A, and with B's admin key) calls every
    platform API route on A: each is refused or sees nothing, and nothing is written.
    Also run against a gateway process (tests/test_api_gateway_processes.py)."""
    calls = [
        ("GET", f"/v1/organizations/{ORG_A}", None),
        ("PATCH", f"/v1/organizations/{ORG_A}", {"name": "Mine"}),
        ("GET", f"/v1/organizations/{ORG_A}/members", None),
        ("POST", f"/v1/organizations/{ORG_A}/members", {"email": "outsider@example.test"}),
        ("PATCH", f"/v1/organizations/{ORG_A}/members/{MEMBER_A}", {"role": "viewer"}),
        ("DELETE", f"/v1/organizations/{ORG_A}/members/{MEMBER_A}", None),
        ("GET", f"/v1/organizations/{ORG_A}/teams", None),
        ("POST", f"/v1/organizations/{ORG_A}/teams", {"name": "Spies"}),
        ("GET", f"/v1/organizations/{ORG_A}/api-keys", None),
        ("POST", f"/v1/organizations/{ORG_A}/api-keys", {"name": "x", "scopes": ["admin"]}),
        ("GET", f"/v1/organizations/{ORG_A}/webhooks", None),
        ("POST", f"/v1/organizations/{ORG_A}/webhooks", {"url": "https://evil.test/h", "events": ["workflow.failed"]}),
        ("GET", f"/v1/organizations/{ORG_A}/audit-log", None),
        ("GET", f"/v1/organizations/{ORG_A}/notification-preferences", None),
        ("POST", f"/v1/organizations/{ORG_A}/invitation/accept", None),
    ]  # fmt: skip
    b_key = client.post(
        f"/v1/organizations/{ORG_B}/api-keys", json={"name": "b", "scopes": ["admin"]},
        headers=as_(ADMIN_B, ORG_B),
    ).json()["key"]  # fmt: skip
    before = rows(owner_dsn, "select count(*) from public.audit_logs")[0][0]
    answers = []
    for headers in (as_(ADMIN_B, ORG_B), as_(ADMIN_B, ORG_A), {"X-API-Key": b_key}):
        for method, path, body in calls:
            answers.append((method, path, client.request(method, path, json=body, headers=headers)))

    for method, path, response in answers:
        assert response.status_code in (403, 404), (method, path, response.status_code)
    assert rows(owner_dsn, "select count(*) from public.audit_logs")[0][0] == before
    assert rows(owner_dsn, "select count(*) from public.teams")[0][0] == 0


# Teams, webhooks, preferences, the audit log.


def test_teams_and_their_members(seeded: Database) -> None:
    with gateway(seeded.app_dsn) as client:
        team = client.post(
            f"/v1/organizations/{ORG_A}/teams", json={"name": "Sales"}, headers=as_(ADMIN_A)
        ).json()
        added = client.post(
            f"/v1/organizations/{ORG_A}/teams/{team['id']}/members",
            json={"user_id": str(MEMBER_A), "role": "lead"}, headers=as_(ADMIN_A),
        )  # fmt: skip
        stranger = client.post(
            f"/v1/organizations/{ORG_A}/teams/{team['id']}/members",
            json={"user_id": str(ADMIN_B)}, headers=as_(ADMIN_A),
        )  # fmt: skip
        seen = client.get(
            f"/v1/organizations/{ORG_A}/teams/{team['id']}/members", headers=as_(VIEWER_A)
        ).json()

    assert added.status_code == 201
    assert stranger.status_code == 403  # only the organization's active members join its teams
    assert [m["user_id"] for m in seen["data"]] == [str(MEMBER_A)]


def test_a_webhook_secret_is_shown_once_and_only_its_hash_is_kept(seeded: Database) -> None:
    with gateway(seeded.app_dsn) as client:
        created = client.post(
            f"/v1/organizations/{ORG_A}/webhooks",
            json={"url": "https://hooks.example.test/vc", "events": ["workflow.completed"]},
            headers=as_(ADMIN_A),
        )
        listed = client.get(f"/v1/organizations/{ORG_A}/webhooks", headers=as_(ADMIN_A)).json()
        plain_http = client.post(
            f"/v1/organizations/{ORG_A}/webhooks",
            json={"url": "http://hooks.example.test/vc", "events": ["workflow.completed"]},
            headers=as_(ADMIN_A),
        )

    assert created.status_code == 201
    secret = created.json()["secret"]
    assert secret == signing_secret(INTERNAL_SECRET, uuid.UUID(created.json()["id"]))
    assert "secret" not in listed["data"][0]
    stored = rows(seeded.owner_dsn, "select secret_hash from public.webhooks")
    assert stored[0]["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert (plain_http.status_code, plain_http.json()["param"]) == (422, "url")


def test_notification_preferences_are_the_callers_own(seeded: Database) -> None:
    with gateway(seeded.app_dsn) as client:
        set_ = client.put(
            f"/v1/organizations/{ORG_A}/notification-preferences",
            json={"channel": "email", "event_type": "workflow.failed", "enabled": False},
            headers=as_(MEMBER_A),
        )
        mine = client.get(
            f"/v1/organizations/{ORG_A}/notification-preferences", headers=as_(MEMBER_A)
        )
        theirs = client.get(
            f"/v1/organizations/{ORG_A}/notification-preferences", headers=as_(VIEWER_A)
        )

    assert set_.status_code == 200
    assert [p["enabled"] for p in mine.json()] == [False]
    assert theirs.json() == []


def test_the_audit_log_pages_newest_first_for_admins_only(seeded: Database) -> None:
    with gateway(seeded.app_dsn) as client:
        for index in range(5):
            client.post(
                f"/v1/organizations/{ORG_A}/teams", json={"name": f"T{index}"}, headers=as_(ADMIN_A)
            )
        first = client.get(
            f"/v1/organizations/{ORG_A}/audit-log?limit=2", headers=as_(OWNER_A)
        ).json()
        second = client.get(
            f"/v1/organizations/{ORG_A}/audit-log?limit=2&cursor={first['next_cursor']}",
            headers=as_(OWNER_A),
        ).json()
        member = client.get(f"/v1/organizations/{ORG_A}/audit-log", headers=as_(MEMBER_A))
        forged = client.get(
            f"/v1/organizations/{ORG_A}/audit-log?cursor=bm90LWEtY3Vyc29y", headers=as_(OWNER_A)
        )

    names = [e["details"]["name"] for e in first["data"] + second["data"]]
    assert names == ["T4", "T3", "T2", "T1"]
    assert member.status_code == 403
    assert (forged.status_code, forged.json()["param"]) == (422, "cursor")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x" * 201},
        {"name": ["Sales"]},
        {"name": "Sales", "extra": 1},
        {"name": {"a": {"b": {"c": {}}}}},
        {"name": 1e308},
        {},
    ],
)
def test_hostile_bodies_get_a_422_naming_the_field(seeded: Database, body: dict[str, Any]) -> None:
    with gateway(seeded.app_dsn) as client:
        response = client.post(f"/v1/organizations/{ORG_A}/teams", json=body, headers=as_(ADMIN_A))

    assert response.status_code == 422
    assert response.json()["param"] in ("name", "extra")
    assert rows(seeded.owner_dsn, "select count(*) from public.teams")[0][0] == 0


def test_a_body_past_the_limit_is_413(seeded: Database) -> None:
    with gateway(seeded.app_dsn, gateway_max_body_bytes=2048) as client:
        response = client.post(
            f"/v1/organizations/{ORG_A}/teams",
            content=b'{"name": "' + b"x" * 4096 + b'"}',
            headers={**as_(ADMIN_A), "content-type": "application/json"},
        )

    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


# Limits, CORS and headers.


def test_limits_are_per_caller_with_ratelimit_headers(
    seeded: Database, redis_server: RedisServer
) -> None:
    with gateway(seeded.app_dsn, redis_url=redis_server.url, gateway_limit_per_user=3) as client:
        answers = [client.get("/v1/me", headers=as_(MEMBER_A)) for _ in range(4)]
        other = client.get("/v1/me", headers=as_(VIEWER_A))
        # A client-chosen request id does not key the limit.
        spoofed = client.get("/v1/me", headers={**as_(MEMBER_A), "X-Request-ID": "fresh-id"})

    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert answers[0].headers["ratelimit-policy"] == '"user";q=3;w=60'
    assert answers[2].headers["ratelimit"].startswith('"user";r=0;')
    assert answers[3].status_code == 429
    assert int(answers[3].headers["retry-after"]) >= 1
    assert answers[3].json()["code"] == "user_rate_limit_exceeded"
    assert other.status_code == 200
    assert spoofed.status_code == 429


def test_redis_down_fails_closed(seeded: Database, redis_server: RedisServer) -> None:
    with gateway(seeded.app_dsn, redis_url=redis_server.url) as client:
        redis_server.process.terminate()
        redis_server.process.wait(timeout=10)
        response = client.get("/v1/me", headers=as_(MEMBER_A))

    assert response.status_code == 503
    assert response.json()["code"] == "rate_limiter_unavailable"


def test_cors_allows_only_the_listed_origins(seeded: Database) -> None:
    allowed, refused = "https://app.valuecanvas.test", "https://evil.test"
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    with gateway(seeded.app_dsn, gateway_cors_origins=[allowed]) as client:
        ok = client.options("/v1/me", headers={"Origin": allowed, **preflight})
        no = client.options("/v1/me", headers={"Origin": refused, **preflight})
        simple_ok = client.get("/v1/me", headers={"Origin": allowed, **as_(MEMBER_A)})
        simple_no = client.get("/v1/me", headers={"Origin": refused, **as_(MEMBER_A)})

    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == allowed
    assert ok.headers["access-control-allow-credentials"] == "true"
    assert no.status_code == 400
    assert "access-control-allow-origin" not in no.headers
    assert simple_ok.headers["access-control-allow-origin"] == allowed
    assert "access-control-allow-origin" not in simple_no.headers


def test_security_headers(seeded: Database) -> None:
    with gateway(seeded.app_dsn, gateway_hsts_seconds=31536000) as client:
        api = client.get("/v1/me", headers=as_(MEMBER_A))
        docs = client.get("/docs")

    assert api.headers["x-content-type-options"] == "nosniff"
    assert api.headers["referrer-policy"] == "no-referrer"
    assert api.headers["content-security-policy"].startswith("default-src 'none'")
    assert api.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert docs.status_code == 200
    assert "script-src 'self'" in docs.headers["content-security-policy"]
    assert "http" not in docs.headers["content-security-policy"]  # nothing from elsewhere


# The first five minutes: the commands a new user starts with.


def test_the_first_admin_and_an_api_key_from_the_command_line(database: Database) -> None:
    env = {"DATABASE_URL": database.app_dsn, "JWT_SECRET": JWT_SECRET}
    admin = ("create-admin", "--email", "ada@example.test", "--organization", "Ada Co",
             "--slug", "ada-co")  # fmt: skip
    first, again = run_cli(*admin, env=env), run_cli(*admin, env=env)
    key = run_cli("create-api-key", "--organization", "ada-co", "--name", "ci",
                  "--scope", "value-cases:read", "--scope", "value-cases:write", env=env)  # fmt: skip
    unknown = run_cli("create-api-key", "--organization", "nope", "--name", "ci",
                      "--scope", "admin", env=env)  # fmt: skip

    assert first.returncode == 0, first.stderr
    token = first.stdout.strip()
    assert key.returncode == 0, key.stderr
    assert key.stdout.strip().startswith("vc_")
    assert key.stdout.strip() not in key.stderr
    assert (unknown.returncode, unknown.stderr.strip()) == (
        1, "valuecanvas create-api-key: no organization with slug 'nope'",
    )  # fmt: skip
    with gateway(database.app_dsn) as client:
        organizations = client.get(
            "/v1/organizations", headers={"Authorization": f"Bearer {token}"}
        )
        rerun = client.get(
            "/v1/organizations", headers={"Authorization": f"Bearer {again.stdout.strip()}"}
        )
        members = client.get(
            f"/v1/organizations/{organizations.json()['data'][0]['id']}/members",
            headers={"X-API-Key": key.stdout.strip()},
        )

    assert [(o["slug"], o["my_role"]) for o in organizations.json()["data"]] == [
        ("ada-co", "owner")
    ]
    assert rerun.json()["data"] == organizations.json()["data"]  # a rerun found the same
    roles = sorted((m["kind"], m["role"]) for m in members.json()["data"])
    assert roles == [("person", "owner"), ("service", "member")]
    actions = [
        r["action"]
        for r in rows(database.owner_dsn, "select action from public.audit_logs order by id")
    ]
    assert actions == ["organization.create", "member.add", "api_key.create"]


def test_without_credentials_the_client_address_is_limited(
    seeded: Database, redis_server: RedisServer
) -> None:
    with gateway(seeded.app_dsn, redis_url=redis_server.url, gateway_limit_per_ip=3) as client:
        documents = [client.get("/openapi.json") for _ in range(2)]
        guess = client.get("/v1/me", headers={"X-API-Key": "vc_guessing_" + "x" * 43})
        # A forged X-Forwarded-For does not make a new address (no trusted proxy).
        refused = client.get("/openapi.json", headers={"X-Forwarded-For": "203.0.113.9"})
        member = client.get("/v1/me", headers=as_(MEMBER_A))

    assert [d.status_code for d in documents] == [200, 200]
    assert documents[0].headers["ratelimit-policy"] == '"ip";q=3;w=60'
    assert guess.status_code == 401  # a failed attempt counts against the address
    assert refused.status_code == 429
    assert refused.json()["code"] == "ip_rate_limit_exceeded"
    assert member.status_code == 200  # callers with credentials are counted as themselves
