"""The gateway as real processes in front of real services: what reaches the service
(identity, forwarded headers, no hop-by-hop or client credentials), streams passing event
by event, a streamed completion through the real llm-proxy, upstreams down (503) or slow
(504), retries for idempotent methods only, the auth matrix, and exact limits with two
replicas sharing one Redis."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest

from tests.support.echo import EchoUpstream
from tests.support.processes import ServiceProcess, write_env
from tests.support.rows import add_member, add_organization
from tests.support.servers import Database, RedisServer
from tests.support.tokens import JWT_SECRET, bearer
from valuecanvas.api_gateway.routes import default_routes
from valuecanvas.core.identity import INTERNAL_AUDIENCE
from valuecanvas.localdev.postgres import free_port

INTERNAL_SECRET = "internal-secret-for-the-gateway-processes-0123"
ORG = uuid.uuid4()
ADMIN, MEMBER = uuid.uuid4(), uuid.uuid4()


async def _seed(dsn: str) -> None:
    owner = await asyncpg.connect(dsn)
    try:
        await add_organization(owner, ORG, "Acme")
        await add_member(owner, ORG, ADMIN, "admin")
        await add_member(owner, ORG, MEMBER, "member")
    finally:
        await owner.close()


def gateway_env(
    database: Database, redis: RedisServer, echo: EchoUpstream, **extra: Any
) -> dict[str, Any]:
    routes = [route.model_dump() for route in default_routes()]
    routes.append({"path": "/v1/value-cases/slow", "service": "orchestrator", "methods": ["GET"],
                   "timeout_seconds": 0.5})  # fmt: skip
    return {
        "database_url": database.app_dsn,
        "redis_url": redis.url,
        "jwt_secret": JWT_SECRET,
        "internal_token_secret": INTERNAL_SECRET,
        "log_level": "WARNING",
        "gateway_routes": json.dumps(routes),
        # Nothing listens on the opportunity agent's port: an upstream that is down.
        "service_urls": json.dumps(
            {"orchestrator": echo.url, "opportunity": f"http://127.0.0.1:{free_port()}"}
        ),
        "gateway_breaker_failures": 3,
        "gateway_api_key_cache_seconds": 0,
        **extra,
    }


@pytest.fixture
def echo() -> Iterator[EchoUpstream]:
    upstream = EchoUpstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    processes: list[ServiceProcess] = []
    yield processes
    for process in processes:
        process.stop()


def start_gateway(
    started: list[ServiceProcess], tmp_path: Path, env: dict[str, Any], index: int = 0
) -> ServiceProcess:
    env_file = write_env(tmp_path / f"gateway-{index}.env", **env)
    process = ServiceProcess(
        "api-gateway", free_port(), env_file, tmp_path / f"gateway-{index}.log"
    )
    started.append(process.start())
    return process


@pytest.fixture
def one_gateway(
    database: Database, redis_server: RedisServer, echo: EchoUpstream,
    started: list[ServiceProcess], tmp_path: Path,
) -> ServiceProcess:  # fmt: skip
    asyncio.run(_seed(database.owner_dsn))
    return start_gateway(started, tmp_path, gateway_env(database, redis_server, echo))


def test_what_reaches_the_service(one_gateway: ServiceProcess) -> None:
    response = httpx.post(
        f"{one_gateway.url}/v1/value-cases/abc?x=1",
        json={"notes": "discovery"},
        headers={
            **bearer(MEMBER, ORG),
            "Connection": "keep-alive, X-Private-Hop",
            "X-Private-Hop": "secret",
            "Proxy-Authorization": "Basic c2VjcmV0",
            "X-Forwarded-For": "6.6.6.6",
            "X-Request-ID": "trace-123",
            "Cookie": "session=1",
        },
        timeout=10,
    )

    assert response.status_code == 200, response.text
    assert response.headers["x-upstream"] == "echo"
    assert response.headers["x-request-id"] == "trace-123"
    seen = response.json()
    headers = dict(seen["headers"])
    assert (seen["method"], seen["path"], seen["query"]) == ("POST", "/v1/value-cases/abc", "x=1")
    assert json.loads(seen["body"]) == {"notes": "discovery"}
    for dropped in ("x-private-hop", "proxy-authorization", "cookie"):
        assert dropped not in headers
    assert headers["x-forwarded-for"] == "127.0.0.1"  # the client's address, not its claim
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == f"127.0.0.1:{one_gateway.port}"
    assert headers["x-request-id"] == "trace-123"
    # The service is told who calls by a short-lived internal token, not the user's own.
    scheme, token = headers["authorization"].split(" ")
    claims = jwt.decode(token, INTERNAL_SECRET, algorithms=["HS256"], audience=INTERNAL_AUDIENCE)
    assert (scheme, claims["sub"], claims["organization_id"]) == ("Bearer", str(MEMBER), str(ORG))
    assert claims["act"] == {"sub": "api-gateway"}
    assert claims["exp"] - claims["iat"] <= 60


def test_server_sent_events_pass_event_by_event(
    one_gateway: ServiceProcess, echo: EchoUpstream
) -> None:
    with httpx.stream(
        "GET", f"{one_gateway.url}/v1/workflows/events", headers=bearer(MEMBER, ORG), timeout=10
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        # Event 1 arrives while the service is still holding event 2 back.
        assert next(lines) == "event: progress"
        assert next(lines) == 'data: {"step": 1}'
        assert not echo.release.is_set()
        echo.release.set()
        rest = list(lines)

    assert 'data: {"step": 2}' in rest


def test_upstreams_down_or_slow_are_503_and_504_problems(
    one_gateway: ServiceProcess, echo: EchoUpstream
) -> None:
    headers = bearer(MEMBER, ORG)
    down = httpx.post(f"{one_gateway.url}/v1/agents/opportunity/run", json={}, headers=headers)
    started = time.monotonic()
    slow = httpx.get(f"{one_gateway.url}/v1/value-cases/slow?s=3", headers=headers, timeout=10)
    waited = time.monotonic() - started
    # After 3 failures in a row the breaker answers at once, without calling.
    for _ in range(3):
        httpx.post(f"{one_gateway.url}/v1/agents/opportunity/run", json={}, headers=headers)
    open_breaker = httpx.post(
        f"{one_gateway.url}/v1/agents/opportunity/run", json={}, headers=headers
    )

    assert down.status_code == 503
    assert down.headers["content-type"] == "application/problem+json"
    assert down.json()["code"] == "upstream_unavailable"
    assert "Traceback" not in down.text
    assert slow.status_code == 504
    assert slow.json()["code"] == "upstream_timeout"
    assert waited < 2.5  # the route's 0.5 s, not the service's 3 s
    assert open_breaker.status_code == 503
    assert "not sending it requests" in open_breaker.json()["detail"]


def test_only_idempotent_methods_are_retried(
    one_gateway: ServiceProcess, echo: EchoUpstream
) -> None:
    headers = bearer(MEMBER, ORG)
    echo.flaky, echo.calls = 1, 0
    get = httpx.get(f"{one_gateway.url}/v1/workflows/flaky", headers=headers)
    get_calls = echo.calls
    echo.flaky, echo.calls = 1, 0
    post = httpx.post(f"{one_gateway.url}/v1/workflows/flaky", json={}, headers=headers)

    assert (get.status_code, get_calls) == (200, 2)
    assert (post.status_code, echo.calls) == (503, 1)


def test_a_path_below_a_route_that_the_document_does_not_allow_is_not_forwarded(
    one_gateway: ServiceProcess, echo: EchoUpstream
) -> None:
    """A control character, a space or an empty segment below a route: the upstream's URL
    handling could make another path of it (a tab dropped, '/x/' redirected to '/x')."""
    echo.calls = 0
    answers = [
        httpx.get(f"{one_gateway.url}/v1/value-cases/{path}", headers=bearer(MEMBER, ORG))
        for path in ("%09", "a%20b", "a//b", "")
    ]  # fmt: skip

    assert [answer.status_code for answer in answers] == [404, 404, 404, 404]
    assert answers[0].json()["code"] == "no_such_path"
    assert echo.calls == 0
    assert httpx.get(f"{one_gateway.url}/v1/value-cases/ok-1.2_x",
                     headers=bearer(MEMBER, ORG)).status_code == 200  # fmt: skip
    assert echo.calls == 1


def test_the_auth_matrix_against_the_process(
    one_gateway: ServiceProcess, database: Database
) -> None:
    url = one_gateway.url
    key = httpx.post(
        f"{url}/v1/organizations/{ORG}/api-keys", json={"name": "reader", "scopes": ["value-cases:read"]},
        headers=bearer(ADMIN, ORG),
    ).json()  # fmt: skip
    reader = {"X-API-Key": key["key"]}
    expired = bearer(MEMBER, ORG, exp=int(time.time()) - 3600)
    answers = {
        "none": httpx.get(f"{url}/v1/value-cases"),
        "bad": httpx.get(f"{url}/v1/value-cases", headers={"Authorization": "Bearer x.y.z"}),
        "expired": httpx.get(f"{url}/v1/value-cases", headers=expired),
        "wrong secret": httpx.get(
            f"{url}/v1/value-cases",
            headers={
                "Authorization": "Bearer "
                + jwt.encode(
                    {"sub": str(MEMBER), "aud": "authenticated", "exp": int(time.time()) + 60},
                    "another-secret-0123456789abcdef0123",
                    algorithm="HS256",
                )
            },
        ),
        "read ok": httpx.get(f"{url}/v1/value-cases", headers=reader),
        "write refused": httpx.post(f"{url}/v1/value-cases", json={}, headers=reader),
    }
    httpx.post(
        f"{url}/v1/organizations/{ORG}/api-keys/{key['id']}/revoke", headers=bearer(ADMIN, ORG)
    )
    answers["revoked"] = httpx.get(f"{url}/v1/value-cases", headers=reader)

    statuses = {name: response.status_code for name, response in answers.items()}
    assert statuses == {
        "none": 401, "bad": 401, "expired": 401, "wrong secret": 401,
        "read ok": 200, "write refused": 403, "revoked": 401,
    }  # fmt: skip
    assert answers["write refused"].json()["param"] == "value-cases:write"
    assert answers["expired"].json()["detail"] == "token expired"
    for response in answers.values():
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json"

    async def actions() -> list[str]:
        connection = await asyncpg.connect(database.owner_dsn)
        try:
            return [
                r["action"]
                for r in await connection.fetch("select action from public.audit_logs order by id")
            ]
        finally:
            await connection.close()

    assert asyncio.run(actions()) == ["api_key.create", "api_key.revoke"]


async def test_two_replicas_sharing_redis_admit_exactly_the_limit(
    database: Database, redis_server: RedisServer, echo: EchoUpstream,
    started: list[ServiceProcess], tmp_path: Path,
) -> None:  # fmt: skip
    await _seed(database.owner_dsn)
    env = gateway_env(database, redis_server, echo, gateway_limit_per_user=7)
    replicas = [start_gateway(started, tmp_path, env, index) for index in range(2)]
    headers = bearer(MEMBER, ORG)
    async with httpx.AsyncClient(timeout=10) as client:
        answers = await asyncio.gather(
            *(
                client.get(f"{replicas[i % 2].url}/v1/value-cases", headers=headers)
                for i in range(20)
            )
        )

    statuses = sorted(response.status_code for response in answers)
    assert statuses == [200] * 7 + [429] * 13
    assert {r.headers["ratelimit-policy"] for r in answers} == {'"user";q=7;w=60'}


async def test_a_streamed_completion_passes_through_the_llm_proxy(
    database: Database, redis_server: RedisServer, echo: EchoUpstream,
    started: list[ServiceProcess], tmp_path: Path,
) -> None:  # fmt: skip
    """Gateway -> the real llm-proxy (offline provider: no key) -> back, event by event; the
    proxy attributes the usage to the user the gateway's internal token names."""
    await _seed(database.owner_dsn)
    proxy_env = write_env(
        tmp_path / "proxy.env", database_url=database.app_dsn, redis_url=redis_server.url,
        jwt_secret=JWT_SECRET, internal_token_secret=INTERNAL_SECRET, log_level="WARNING",
    )  # fmt: skip
    proxy = ServiceProcess("llm-proxy", free_port(), proxy_env, tmp_path / "proxy.log")
    started.append(proxy.start())
    env = gateway_env(database, redis_server, echo)
    env["service_urls"] = json.dumps({**json.loads(env["service_urls"]), "llm-proxy": proxy.url})
    gateway = start_gateway(started, tmp_path, env)
    body = {"model": "valuecanvas-default", "stream": True,
            "messages": [{"role": "user", "content": "Quantify the value."}]}  # fmt: skip

    events: list[str] = []
    async with (
        httpx.AsyncClient(timeout=20) as client,
        client.stream(
            "POST", f"{gateway.url}/v1/chat/completions", json=body, headers=bearer(MEMBER, ORG)
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(line.removeprefix("data: "))

    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert len(chunks) > 2  # many events, not one buffered body
    assert "offline" in "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
    )

    async def usage_users() -> list[uuid.UUID]:
        connection = await asyncpg.connect(database.owner_dsn)
        try:
            for _ in range(50):
                found = [
                    r["user_id"]
                    for r in await connection.fetch("select user_id from public.llm_usage")
                ]
                if found:
                    return found
                await asyncio.sleep(0.2)
            return []
        finally:
            await connection.close()

    assert await usage_users() == [MEMBER]


def test_across_organizations_cors_and_413_against_the_process(
    database: Database, redis_server: RedisServer, echo: EchoUpstream,
    started: list[ServiceProcess], tmp_path: Path,
) -> None:  # fmt: skip
    from tests import test_api_gateway as platform_api

    asyncio.run(platform_api._seed(database.owner_dsn))
    allowed = "https://app.valuecanvas.test"
    env = gateway_env(database, redis_server, echo, gateway_cors_origins=json.dumps([allowed]),
                      gateway_max_body_bytes=4096)  # fmt: skip
    gateway = start_gateway(started, tmp_path, env)
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key",
    }

    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        platform_api.assert_cross_organization_calls_refused(client, database.owner_dsn)
        cors_ok = client.options("/v1/value-cases", headers={"Origin": allowed, **preflight})
        cors_no = client.options(
            "/v1/value-cases", headers={"Origin": "https://evil.test", **preflight}
        )
        headers = platform_api.as_(platform_api.MEMBER_A)
        routed = client.post("/v1/value-cases", content=b"x" * 5000, headers=headers)
        chunked = client.post("/v1/value-cases", content=iter([b"x" * 3000] * 2), headers=headers)
        platform = client.post(
            f"/v1/organizations/{platform_api.ORG_A}/teams",
            content=b'{"name": "' + b"x" * 5000 + b'"}',
            headers={**headers, "content-type": "application/json"},
        )

    assert cors_ok.headers["access-control-allow-origin"] == allowed
    assert cors_no.status_code == 400
    assert "access-control-allow-origin" not in cors_no.headers
    for refused in (routed, chunked, platform):
        assert refused.status_code == 413, refused.text
        assert refused.json()["code"] == "request_too_large"
    assert echo.calls == 0  # nothing reached the service
