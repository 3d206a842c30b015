"""The eight service apps: shared endpoints, readiness against real Postgres and Redis,
request ids, metrics, and the authenticated path through row-level security."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import pytest
from dbos import DBOS
from fastapi import APIRouter, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel

from tests.support.rows import add_member, add_organization
from tests.support.servers import Database, RedisServer
from tests.support.tokens import JWT_SECRET, bearer, user_token
from tests.support.waiting import wait_until
from valuecanvas.core.app import create_service_app
from valuecanvas.core.identity import Identity, InternalTokenIssuer
from valuecanvas.core.settings import ServiceSettings
from valuecanvas.core.state import get_state
from valuecanvas.localdev.postgres import TemporaryPostgres
from valuecanvas.orchestrator.runtime import engine_config
from valuecanvas.orchestrator.settings import OrchestratorSettings
from valuecanvas.registry import SERVICES

INTERNAL_SECRET = "internal-secret-for-the-service-tests-0123456789"


def settings_for(name: str, dsn: str, **overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {
        "database_url": dsn,
        "jwt_secret": JWT_SECRET,
        "internal_token_secret": INTERNAL_SECRET,
        "readiness_timeout_seconds": 2,
        **overrides,
    }
    return SERVICES[name].settings_class()(_env_file=None, **values)


def metric_value(text: str, prefix: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_serves_the_shared_endpoints(name: str, database: Database) -> None:
    app = SERVICES[name].create_app(settings_for(name, database.app_dsn))

    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        # The orchestrator also reports its workflow engine, launched just after it starts.
        expected = {"database": "ok"} | ({"engine": "ok"} if name == "orchestrator" else {})
        ready = wait_until(
            lambda: (r := client.get("/readyz")).json()["checks"] == expected and r,
            what=f"{name} ready",
        )  # fmt: skip
        assert ready.status_code == 200
        spec = client.get("/openapi.json").json()
        assert spec["info"]["title"] == f"ValueCanvas {SERVICES[name].entry.title}"
        assert {"/healthz", "/readyz", "/metrics", "/v1/whoami"} <= set(spec["paths"])
        metrics = client.get("/metrics").text

    assert (
        f'http_requests_total{{method="GET",route="/readyz",service="{name}",status="200"}} 1.0'
        in metrics
    )
    assert "http_request_duration_seconds_bucket" in metrics
    assert (
        f'http_requests_in_flight{{service="{name}"}} 1.0' in metrics
    )  # the /metrics request itself


def test_ports_are_the_specs() -> None:
    assert {name: spec.entry.port for name, spec in SERVICES.items()} == {
        "api-gateway": 8000, "opportunity": 8080, "target": 8081, "realization": 8082,
        "expansion": 8083, "integrity": 8084, "orchestrator": 8085, "llm-proxy": 8086,
    }  # fmt: skip


def test_readiness_follows_the_database_while_liveness_stays_up(migrated_template: str) -> None:
    with TemporaryPostgres() as own_postgres:
        app = SERVICES["realization"].create_app(settings_for("realization", own_postgres.dsn()))
        with TestClient(app) as client:
            assert client.get("/readyz").status_code == 200

            own_postgres.stop()
            own_postgres.wait_until_stopped()
            down = client.get("/readyz")
            assert down.status_code == 503
            assert down.json()["status"] == "unavailable"
            assert down.json()["checks"]["database"].startswith("unreachable")
            assert client.get("/healthz").status_code == 200

            own_postgres.restart()
            assert client.get("/readyz").status_code == 200


async def _create_the_engines_role_and_schema(dsn: str) -> None:
    """The part of migration 0011 the workflow engine needs: its role and schema."""
    owner = await asyncpg.connect(dsn)
    try:
        await owner.execute("create role orchestrator nologin noinherit; "
                            "create schema dbos authorization orchestrator")  # fmt: skip
    finally:
        await owner.close()


def test_the_orchestrator_serves_before_its_engine_can_launch_and_says_why() -> None:
    """Until its role and schema exist (the migrations make them), the workflow engine does
    not launch: the service is alive, not ready, and names the reason; then it launches."""
    with TemporaryPostgres() as own_postgres:
        app = SERVICES["orchestrator"].create_app(settings_for("orchestrator", own_postgres.dsn()))
        with TestClient(app) as client:
            not_yet = wait_until(
                lambda: "does not exist" in (r := client.get("/readyz")).text and r,
                what="the engine's reason",
            )  # fmt: skip
            assert not_yet.status_code == 503
            assert not_yet.json()["checks"]["database"] == "ok"
            assert 'role "orchestrator" does not exist' in not_yet.json()["checks"]["engine"]
            assert client.get("/healthz").status_code == 200

            asyncio.run(_create_the_engines_role_and_schema(own_postgres.dsn()))
            ready = wait_until(lambda: (r := client.get("/readyz")).status_code == 200 and r,
                               what="the engine launched", timeout=60)  # fmt: skip
            assert ready.json()["checks"] == {"database": "ok", "engine": "ok"}


@DBOS.workflow(name="tests.engine.restart")
async def _one_step_workflow(value: int) -> int:
    async def double(number: int) -> int:
        return number * 2

    return int(await DBOS.run_step_async({"name": "double"}, double, value))


def test_the_engine_outlives_a_database_restart_without_pinging_each_checkout() -> None:
    """The engine's pool does not ping before each checkout (runtime.engine_config): after
    Postgres restarts, its pooled connections are dead, and a checkpoint on one must be
    retried on a new connection, not fail the run."""
    with TemporaryPostgres() as own_postgres:

        async def run(value: int) -> int:
            handle = await DBOS.start_workflow_async(_one_step_workflow, value)
            return int(await handle.get_result())

        asyncio.run(_create_the_engines_role_and_schema(own_postgres.dsn()))
        settings = settings_for("orchestrator", own_postgres.dsn())
        assert isinstance(settings, OrchestratorSettings)
        config = engine_config(settings)
        assert config["db_engine_kwargs"]["pool_pre_ping"] is False
        DBOS(config=config)
        DBOS.launch()
        try:
            assert asyncio.run(run(1)) == 2
            own_postgres.stop()
            own_postgres.restart()
            assert asyncio.run(run(2)) == 4
        finally:
            DBOS.destroy(destroy_registry=False)


def test_readiness_follows_redis_when_configured(
    database: Database, redis_server: RedisServer
) -> None:
    app = SERVICES["llm-proxy"].create_app(
        settings_for("llm-proxy", database.app_dsn, redis_url=redis_server.url)
    )
    with TestClient(app) as client:
        assert client.get("/readyz").json()["checks"] == {"database": "ok", "redis": "ok"}

        redis_server.process.terminate()
        redis_server.process.wait(timeout=10)
        down = client.get("/readyz")

    assert down.status_code == 503
    assert down.json()["checks"]["database"] == "ok"
    assert down.json()["checks"]["redis"].startswith("unreachable")


def test_a_service_starts_while_the_database_is_down() -> None:
    app = SERVICES["target"].create_app(settings_for("target", "postgresql://x@127.0.0.1:1/none"))

    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503


@pytest.fixture
def echo_server() -> Iterator[str]:
    """Answers with the X-Request-ID it received (a downstream service, over real HTTP)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (self.headers.get("X-Request-ID") or "").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_the_request_id_is_accepted_returned_and_passed_on(
    database: Database, echo_server: str
) -> None:
    router = APIRouter()

    @router.get("/call-downstream")
    async def call_downstream(request: Request) -> dict[str, str]:
        response = await get_state(request).http.get(echo_server)
        return {"downstream_saw": response.text}

    app = create_service_app(
        settings_for("opportunity", database.app_dsn), title="t", description="d", routers=[router]
    )
    with TestClient(app) as client:
        given = client.get("/call-downstream", headers={"X-Request-ID": "req-123.abc"})
        invalid = client.get("/call-downstream", headers={"X-Request-ID": "bad id\twith spaces"})
        generated = client.get("/call-downstream")

    assert given.headers["X-Request-ID"] == "req-123.abc"
    assert given.json() == {"downstream_saw": "req-123.abc"}
    assert invalid.headers["X-Request-ID"] != "bad id\twith spaces"
    assert invalid.json() == {"downstream_saw": invalid.headers["X-Request-ID"]}
    assert len(generated.headers["X-Request-ID"]) == 32
    assert generated.json() == {"downstream_saw": generated.headers["X-Request-ID"]}


@pytest.fixture
async def member(database: Database) -> tuple[uuid.UUID, uuid.UUID]:
    user, org = uuid.uuid4(), uuid.uuid4()
    owner = await asyncpg.connect(database.owner_dsn)
    try:
        await add_organization(owner, org)
        await add_organization(owner, uuid.uuid4(), "Other")
        await add_member(owner, org, user)
    finally:
        await owner.close()
    return user, org


def test_whoami_sees_only_the_callers_organizations(
    database: Database, member: tuple[uuid.UUID, uuid.UUID]
) -> None:
    user, org = member
    app = SERVICES["api-gateway"].create_app(settings_for("api-gateway", database.app_dsn))
    with TestClient(app) as client:
        mine = client.get(
            "/v1/whoami",
            headers=bearer(user, org),
        )
        stranger = client.get("/v1/whoami", headers=bearer(uuid.uuid4()))

    assert mine.status_code == 200
    assert mine.json()["organizations"] == [{"id": str(org), "name": "Acme"}]
    assert (mine.json()["user_id"], mine.json()["organization_id"]) == (str(user), str(org))
    assert stranger.json()["organizations"] == []


def test_an_internal_token_is_verified_like_a_user_token(
    database: Database, member: tuple[uuid.UUID, uuid.UUID]
) -> None:
    user, org = member
    identity = Identity(user_id=user, organization_id=org, role="authenticated", via="user_token")
    token = InternalTokenIssuer("orchestrator", INTERNAL_SECRET).mint(identity)
    app = SERVICES["target"].create_app(settings_for("target", database.app_dsn))

    with TestClient(app) as client:
        response = client.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"})

    assert response.json()["via"] == "internal_token"
    assert response.json()["actor"] == "orchestrator"
    assert response.json()["organizations"] == [{"id": str(org), "name": "Acme"}]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing bearer token"),
        ("Basic dXNlcjpwYXNz", "missing bearer token"),
        ("Bearer not-a-jwt", "malformed token"),
        (
            "Bearer " + user_token(uuid.uuid4(), exp=1),
            "token expired",
        ),
    ],
)
def test_a_bad_token_gets_401_with_a_reason_and_touches_nothing(
    database: Database, header: str | None, reason: str
) -> None:
    app = SERVICES["integrity"].create_app(settings_for("integrity", database.app_dsn))
    with TestClient(app) as client:
        response = client.get("/v1/whoami", headers={"Authorization": header} if header else {})
        metrics = client.get("/metrics").text

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem == {
        "type": "/problems/invalid_token",
        "title": "Unauthorized",
        "status": 401,
        "detail": reason,
        "instance": "/v1/whoami",
        "code": "invalid_token",
        "param": None,
        "request_id": response.headers["x-request-id"],
        # The same, in OpenAI's shape, for OpenAI SDKs.
        "error": {
            "message": reason,
            "type": "authentication_error",
            "param": None,
            "code": "invalid_token",
        },
    }
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert metric_value(metrics, "db_caller_transactions_total") == 0


def test_metrics_can_be_switched_off(database: Database) -> None:
    app = SERVICES["expansion"].create_app(
        settings_for("expansion", database.app_dsn, metrics_enabled=False)
    )

    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 404


def test_unknown_routes_share_one_metrics_label(database: Database) -> None:
    app = SERVICES["realization"].create_app(settings_for("realization", database.app_dsn))
    with TestClient(app) as client:
        for path in ("/a", "/b/c", "/d?x=1"):
            assert client.get(path).status_code == 404
        metrics = client.get("/metrics").text

    assert 'route="<unmatched>",service="realization",status="404"} 3.0' in metrics


class _Note(BaseModel):
    text: str
    amount: int


@pytest.mark.parametrize(
    "content",
    [
        b'{"text": "x", "amount": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"text": "x", "amount": ' + b"9" * 5000 + b"}",
    ],
    ids=["nested-100000-deep", "5000-digit-number"],
)
def test_a_hostile_body_gets_400_on_every_service_route_that_parses_one(
    database: Database, content: bytes
) -> None:
    """Routes FastAPI parses (the future endpoints of every service) refuse both, as the
    llm-proxy's own reader does (tests/test_llm_proxy.py)."""
    router = APIRouter()

    @router.post("/v1/notes")
    async def create_note(note: _Note) -> _Note:
        return note

    app = create_service_app(
        settings_for("target", database.app_dsn), title="t", description="d", routers=[router]
    )
    with TestClient(app) as client:
        response = client.post(
            "/v1/notes", content=content, headers={"Content-Type": "application/json"}
        )

    assert response.status_code == 400, response.text


def test_the_documents_say_what_the_shared_endpoints_serve(database: Database) -> None:
    app = SERVICES["target"].create_app(settings_for("target", database.app_dsn))
    with TestClient(app) as client:
        spec = client.get("/openapi.json").json()
        metrics = client.get("/metrics")
        docs = client.get("/docs").text
        asset = client.get(docs.split('src="')[1].split('"')[0])

    metrics_doc = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics_doc) == ["text/plain"]
    assert metrics.headers["content-type"].startswith("text/plain")
    whoami = spec["paths"]["/v1/whoami"]["get"]
    assert whoami["security"] == [{"HTTPBearer": []}]
    assert "401" in whoami["responses"]
    # Swagger UI is served from the service itself: /docs works with no network.
    assert "cdn" not in docs.lower()
    assert asset.status_code == 200
    assert "SwaggerUIBundle" in asset.text


def test_an_unexpected_failure_is_a_500_problem_naming_only_the_request_id(
    database: Database, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    router = APIRouter()

    @router.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    app = create_service_app(
        settings_for("target", database.app_dsn), title="t", description="d", routers=[router]
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/boom", headers={"X-Request-ID": "req-boom"})

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "req-boom"
    problem = response.json()
    assert (problem["code"], problem["request_id"], problem["instance"]) == (
        "internal_error", "req-boom", "/v1/boom",
    )  # fmt: skip
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    # The trace is in the log, for the on-call (stdout, or pytest's log capture once another
    # test has set up logging).
    assert "hunter2" in capsys.readouterr().out + caplog.text


def test_a_validation_error_is_a_422_problem_naming_every_field(database: Database) -> None:
    router = APIRouter()

    @router.post("/v1/notes")
    async def create_note(note: _Note) -> _Note:
        return note

    app = create_service_app(
        settings_for("target", database.app_dsn), title="t", description="d", routers=[router]
    )
    with TestClient(app) as client:
        response = client.post("/v1/notes", json={"text": 5, "amount": "many"})
        spec = client.get("/openapi.json").json()

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in response.json()["errors"]] == ["text", "amount"]
    assert response.json()["param"] == "text"
    documented = spec["paths"]["/v1/notes"]["post"]["responses"]["422"]["content"]
    assert documented == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
