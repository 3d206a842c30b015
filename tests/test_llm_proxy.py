"""The LLM proxy in process, against real Postgres and Redis and a local OpenAI-compatible
upstream that plays Together and OpenAI and fails on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient
from genai_prices import Usage, calc_price
from pydantic import ValidationError

from tests.support.rows import add_member, add_organization
from tests.support.servers import Database, RedisServer
from tests.support.tokens import JWT_SECRET, bearer
from tests.support.upstream import COMPLETION_TOKENS, PROMPT_TOKENS, FakeUpstream
from tests.support.waiting import wait_until
from valuecanvas.llm_proxy.ledger import run_drainer
from valuecanvas.llm_proxy.settings import LlmProxySettings
from valuecanvas.registry import SERVICES

INTERNAL_SECRET = "internal-secret-for-the-llm-tests-0123456789"
TOGETHER_KEY = "sk-together-test-key-0123456789abcdef"
OPENAI_KEY = "sk-openai-test-key-fedcba9876543210"
TOGETHER_MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
ORG, OTHER_ORG = uuid.uuid4(), uuid.uuid4()
ADMIN, MEMBER = uuid.uuid4(), uuid.uuid4()
CHAT = {
    "model": "valuecanvas-default",
    "messages": [{"role": "user", "content": "What value did Acme get?"}],
}


def auth(user: uuid.UUID = MEMBER, organization: uuid.UUID | None = ORG) -> dict[str, str]:
    return bearer(user, organization)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def fresh_upstream(upstream: FakeUpstream) -> FakeUpstream:
    upstream.reset()
    return upstream


def settings(
    database: Database, upstream: FakeUpstream, redis_url: str | None, **overrides: Any
) -> LlmProxySettings:
    values: dict[str, Any] = {
        "database_url": database.app_dsn,
        "redis_url": redis_url,
        "jwt_secret": JWT_SECRET,
        "internal_token_secret": INTERNAL_SECRET,
        "together_api_key": TOGETHER_KEY,
        "together_base_url": upstream.url("together"),
        "openai_api_key": OPENAI_KEY,
        "openai_base_url": upstream.url("openai"),
        "llm_retry_attempts": 3,
        "llm_metrics_interval_seconds": 0.05,
        "llm_retry_initial_seconds": 0.01,
        "llm_retry_max_seconds": 2.0,
        "llm_upstream_timeout_seconds": 1.0,
        "llm_first_byte_timeout_seconds": 1.0,
        "llm_breaker_failures": 5,
        "llm_breaker_cooldown_seconds": 30,
        "llm_ledger_claim_idle_seconds": 1,
        **overrides,
    }
    return LlmProxySettings(_env_file=None, **values)


@pytest.fixture
async def members(database: Database) -> None:
    owner = await asyncpg.connect(database.owner_dsn)
    try:
        await add_organization(owner, ORG)
        await add_member(owner, ORG, ADMIN, "admin")
        await add_member(owner, ORG, MEMBER)
    finally:
        await owner.close()


@pytest.fixture
def proxy(
    database: Database, fresh_upstream: FakeUpstream, redis_server: RedisServer, members: None
) -> Iterator[TestClient]:
    app = SERVICES["llm-proxy"].create_app(settings(database, fresh_upstream, redis_server.url))
    with TestClient(app) as client:
        yield client


async def ledger_rows(
    database: Database, expected: int, wait_seconds: float = 10.0
) -> list[asyncpg.Record]:
    """The ledger once it holds ``expected`` rows (the drainer works off the request path)."""
    owner = await asyncpg.connect(database.owner_dsn)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            rows = await owner.fetch("select * from public.llm_usage order by created_at")
            if len(rows) >= expected or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.05)
    finally:
        await owner.close()


def sse(response: Any) -> tuple[list[Any], bool]:
    """The events of a streamed answer, and whether it ended with [DONE]."""
    events, done = [], False
    for line in response.iter_lines():
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            done = True
            continue
        events.append(json.loads(line[6:]))
    return events, done


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param({"status": 500}, id="500"),
        pytest.param({"status": 503}, id="503"),
        pytest.param({"status": 429, "retry_after": "0"}, id="429"),
        pytest.param({"delay": 1.5}, id="timeout"),
    ],
)
async def test_the_fallback_serves_when_the_primary_keeps_failing(
    proxy: TestClient, fresh_upstream: FakeUpstream, database: Database, failure: dict[str, Any]
) -> None:
    fresh_upstream.script("together", failure, failure, failure)

    response = proxy.post("/v1/chat/completions", json=CHAT, headers=auth())

    assert response.status_code == 200, response.text
    assert response.headers["X-ValueCanvas-Provider"] == "openai"
    assert response.headers["X-ValueCanvas-Attempts"] == "4"
    assert [call["provider"] for call in fresh_upstream.calls()] == ["together"] * 3 + ["openai"]
    assert fresh_upstream.calls("together")[0]["model"] == TOGETHER_MODEL
    assert fresh_upstream.calls("openai")[0]["model"] == "gpt-4o-mini"
    (row,) = await ledger_rows(database, 1)
    assert (row["provider"], row["attempts"], row["status"]) == ("openai", 4, "succeeded")


async def test_an_unreachable_primary_falls_back(database: Database, fresh_upstream: FakeUpstream,
                                                 redis_server: RedisServer, members: None) -> None:  # fmt: skip
    app = SERVICES["llm-proxy"].create_app(
        settings(
            database, fresh_upstream, redis_server.url, together_base_url="http://127.0.0.1:9/v1"
        )
    )
    with TestClient(app) as client:
        response = client.post("/v1/chat/completions", json=CHAT, headers=auth())

    assert (response.status_code, response.headers["X-ValueCanvas-Provider"]) == (200, "openai")


def test_retry_after_is_honoured_and_a_retry_can_succeed(
    proxy: TestClient, fresh_upstream: FakeUpstream
) -> None:
    fresh_upstream.script("together", {"status": 429, "retry_after": "0.4"})

    response = proxy.post("/v1/chat/completions", json=CHAT, headers=auth())

    first, second = fresh_upstream.calls("together")
    assert response.headers["X-ValueCanvas-Provider"] == "together"
    assert response.headers["X-ValueCanvas-Attempts"] == "2"
    assert second["at"] - first["at"] >= 0.4
    assert fresh_upstream.calls("openai") == []


@pytest.mark.parametrize("stream", [False, True], ids=["completion", "stream"])
async def test_a_400_goes_back_as_it_is_without_retry_or_fallback_and_is_recorded(
    proxy: TestClient, fresh_upstream: FakeUpstream, database: Database, stream: bool
) -> None:
    refusal = {
        "error": {
            "message": "max_tokens is too large",
            "type": "invalid_request_error",
            "param": "max_tokens",
        }
    }
    fresh_upstream.script("together", {"status": 400, "body": refusal})

    response = proxy.post(
        "/v1/chat/completions", json={**CHAT, "stream": stream, "max_tokens": 10**9}, headers=auth()
    )

    assert (response.status_code, response.json()) == (400, refusal)
    assert len(fresh_upstream.calls()) == 1
    (row,) = await ledger_rows(database, 1)
    assert (row["provider"], row["status"], row["streamed"], row["cost_usd"]) == (
        "together",
        "failed",
        stream,
        Decimal(0),
    )


def test_provider_credentials_errors_fall_back_and_never_reach_the_caller(
    proxy: TestClient, fresh_upstream: FakeUpstream
) -> None:
    leak = {
        "error": {
            "message": f"Incorrect API key provided: {TOGETHER_KEY}",
            "type": "invalid_api_key",
        }
    }
    fresh_upstream.script("together", {"status": 401, "body": leak})

    response = proxy.post("/v1/chat/completions", json=CHAT, headers=auth())

    assert (response.status_code, response.headers["X-ValueCanvas-Provider"]) == (200, "openai")
    assert len(fresh_upstream.calls("together")) == 1  # 401 is not retried
    assert TOGETHER_KEY not in response.text + json.dumps(dict(response.headers))


def test_keys_go_only_to_their_own_provider(
    proxy: TestClient, fresh_upstream: FakeUpstream
) -> None:
    fresh_upstream.script("together", {"status": 500}, {"status": 500}, {"status": 500})
    proxy.post("/v1/chat/completions", json={**CHAT, "user": "someone-else"}, headers=auth())

    assert {call["authorization"] for call in fresh_upstream.calls("together")} == {
        f"Bearer {TOGETHER_KEY}"
    }
    assert {call["authorization"] for call in fresh_upstream.calls("openai")} == {
        f"Bearer {OPENAI_KEY}"
    }
    assert all(
        call["user"] is None for call in fresh_upstream.calls()
    )  # identity never from the body


def test_the_breaker_opens_and_a_probe_closes_it(
    database: Database, fresh_upstream: FakeUpstream, redis_server: RedisServer, members: None
) -> None:
    app = SERVICES["llm-proxy"].create_app(settings(
        database, fresh_upstream, redis_server.url,
        llm_retry_attempts=1, llm_breaker_failures=3, llm_breaker_cooldown_seconds=0.5,
    ))  # fmt: skip
    fresh_upstream.script("together", {"status": 500}, {"status": 500}, {"status": 500})
    with TestClient(app) as client:
        for _ in range(3):
            assert (
                client.post("/v1/chat/completions", json=CHAT, headers=auth()).headers[
                    "X-ValueCanvas-Provider"
                ]
                == "openai"
            )
        assert len(fresh_upstream.calls("together")) == 3

        while_open = client.post("/v1/chat/completions", json=CHAT, headers=auth())
        assert while_open.headers["X-ValueCanvas-Provider"] == "openai"
        assert len(fresh_upstream.calls("together")) == 3  # no traffic to an open breaker
        wait_until(  # the cooldown (0.5 s) passes: half-open
            lambda: 'llm_breaker_state{provider="together"} 1.0' in client.get("/metrics").text,
            what="the breaker's gauge shows half-open", timeout=10,
        )  # fmt: skip

        probe = client.post("/v1/chat/completions", json=CHAT, headers=auth())
        after = client.post("/v1/chat/completions", json=CHAT, headers=auth())

    assert probe.headers["X-ValueCanvas-Provider"] == "together"
    assert after.headers["X-ValueCanvas-Provider"] == "together"


@pytest.mark.parametrize(
    "before_first_byte",
    [
        pytest.param([{"status": 500}] * 3, id="500s"),
        pytest.param([{"cut_after": 0}] * 3, id="cut-before-first-event"),
        pytest.param([{"stall_first": 3}] * 3, id="first-byte-timeout"),
    ],
)
async def test_stream_failures_before_the_first_byte_are_invisible(
    proxy: TestClient,
    fresh_upstream: FakeUpstream,
    database: Database,
    before_first_byte: list[dict[str, Any]],
) -> None:
    fresh_upstream.script("together", *before_first_byte)

    with proxy.stream(
        "POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth()
    ) as response:
        events, done = sse(response)
        provider = response.headers["X-ValueCanvas-Provider"]

    assert (response.status_code, provider, done) == (200, "openai", True)
    assert "".join(
        e["choices"][0]["delta"].get("content", "") for e in events if e.get("choices")
    ) == ("Value is what the customer gets.")
    assert all("usage" not in event for event in events)  # the caller did not ask for it
    (row,) = await ledger_rows(database, 1)
    assert (row["provider"], row["status"], row["streamed"]) == ("openai", "succeeded", True)
    assert (row["prompt_tokens"], row["completion_tokens"], row["tokens_estimated"]) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
        False,
    )


@pytest.mark.parametrize(
    ("behaviour", "reason", "estimated"),
    [
        # Cut: no usage report arrives, so the tokens streamed so far are estimated.
        pytest.param({"cut_after": 2}, "the provider stream failed", True, id="cut"),
        # No finish reason: the provider still reported usage.
        pytest.param({"no_finish": True}, "without a finish reason", False, id="no-finish-reason"),
    ],
)
async def test_stream_failures_after_the_first_byte_end_with_an_error_and_no_done(
    proxy: TestClient,
    fresh_upstream: FakeUpstream,
    database: Database,
    behaviour: dict[str, Any],
    reason: str,
    estimated: bool,
) -> None:
    fresh_upstream.script("together", behaviour)

    with proxy.stream(
        "POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth()
    ) as response:
        events, done = sse(response)

    assert response.status_code == 200
    assert done is False
    assert events[-1]["error"]["code"] == "stream_interrupted"
    assert reason in events[-1]["error"]["message"]
    assert fresh_upstream.calls("openai") == []  # no fallback once the caller has bytes
    (row,) = await ledger_rows(database, 1)
    assert (row["status"], row["streamed"]) == ("failed", True)
    assert row["completion_tokens"] > 0  # what was streamed is still accounted for
    assert row["tokens_estimated"] is estimated


def test_a_stream_passes_usage_through_when_asked(proxy: TestClient) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    with proxy.stream("POST", "/v1/chat/completions", json=body, headers=auth()) as response:
        events, done = sse(response)

    assert done
    assert events[-1]["usage"]["completion_tokens"] == COMPLETION_TOKENS


async def test_cost_is_tokens_times_the_price_table(proxy: TestClient, database: Database) -> None:
    response = proxy.post("/v1/chat/completions", json=CHAT, headers=auth())

    (row,) = await ledger_rows(database, 1)
    expected = calc_price(Usage(input_tokens=PROMPT_TOKENS, output_tokens=COMPLETION_TOKENS), TOGETHER_MODEL,
                          provider_id="together").total_price  # fmt: skip
    assert response.status_code == 200
    assert row["cost_usd"] == expected
    assert (
        row["cost_usd"]
        == (Decimal("0.88") * PROMPT_TOKENS + Decimal("0.88") * COMPLETION_TOKENS) / 10**6
    )
    assert (row["user_id"], row["organization_id"]) == (MEMBER, ORG)
    assert row["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize("stream", [False, True], ids=["completion", "stream"])
def test_the_provider_gets_the_callers_request_id(
    proxy: TestClient, fresh_upstream: FakeUpstream, stream: bool
) -> None:
    headers = {**auth(), "X-Request-ID": f"trace-{uuid.uuid4().hex}"}

    with proxy.stream(
        "POST", "/v1/chat/completions", json={**CHAT, "stream": stream}, headers=headers
    ) as response:
        response.read()

    assert response.status_code == 200
    assert [call["request_id"] for call in fresh_upstream.calls()] == [headers["X-Request-ID"]]


async def test_price_overrides_and_estimated_tokens(
    database: Database, fresh_upstream: FakeUpstream, redis_server: RedisServer, members: None
) -> None:
    app = SERVICES["llm-proxy"].create_app(settings(
        database, fresh_upstream, redis_server.url,
        llm_models={"valuecanvas-default": {"together": "acme/custom-model"}},
        llm_price_overrides={"together/acme/custom-model": {"input_per_million": "2", "output_per_million": "10"}},
    ))  # fmt: skip
    fresh_upstream.script("together", {"no_usage": True})
    with TestClient(app) as client:
        assert client.post("/v1/chat/completions", json=CHAT, headers=auth()).status_code == 200

    (row,) = await ledger_rows(database, 1)
    assert row["tokens_estimated"] is True
    assert row["cost_usd"] == (2 * row["prompt_tokens"] + 10 * row["completion_tokens"]) / Decimal(
        10**6
    )


def test_a_model_with_no_known_price_is_refused_when_the_configuration_loads(
    database: Database, fresh_upstream: FakeUpstream
) -> None:
    with pytest.raises(
        ValidationError, match=r"no price is known for model 'acme/unpriced' at provider 'together'"
    ):
        settings(
            database,
            fresh_upstream,
            None,
            llm_models={"valuecanvas-default": {"together": "acme/unpriced"}},
        )


def test_limits_refuse_with_429_and_headers_and_bill_nothing(
    database: Database, fresh_upstream: FakeUpstream, redis_server: RedisServer, members: None
) -> None:
    app = SERVICES["llm-proxy"].create_app(settings(database, fresh_upstream, redis_server.url,
                                                    llm_user_limit_per_hour=3))  # fmt: skip
    with TestClient(app) as client:
        answers = [client.post("/v1/chat/completions", json=CHAT, headers=auth()) for _ in range(4)]
        other_user = client.post("/v1/chat/completions", json=CHAT, headers=auth(ADMIN))
        metrics = client.get("/metrics").text

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert [answer.headers["X-RateLimit-Remaining"] for answer in answers] == ["2", "1", "0", "0"]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "user_rate_limit_exceeded"
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert 3500 < int(refused.headers["Retry-After"]) <= 3600
    assert other_user.status_code == 200
    assert len(fresh_upstream.calls()) == 4  # the refused request never reached a provider
    assert 'llm_ratelimit_refusals_total{scope="user"} 1.0' in metrics
    # The hot path (past FastAPI's routing) still labels requests with their route.
    assert ('http_requests_total{method="POST",route="/v1/chat/completions",'
            'service="llm-proxy",status="429"} 1.0') in metrics  # fmt: skip


def test_the_hot_path_is_still_documented_and_other_methods_reach_fastapi(
    database: Database, fresh_upstream: FakeUpstream
) -> None:
    app = SERVICES["llm-proxy"].create_app(settings(database, fresh_upstream, None))
    with TestClient(app) as client:
        spec = client.get("/openapi.json").json()
        wrong_method = client.get("/v1/chat/completions", headers=auth())
        no_token = client.post("/v1/chat/completions", json=CHAT)

    post = spec["paths"]["/v1/chat/completions"]["post"]
    body_schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert post["requestBody"]["required"] is True
    assert set(body_schema["required"]) == {"model", "messages"}
    assert body_schema["properties"]["stream"]["type"] == "boolean"
    assert "$ref" not in json.dumps(body_schema)  # inlined: the document stands alone
    assert {"200", "400", "401", "404", "413", "429", "502", "503"} <= set(post["responses"])
    assert wrong_method.status_code == 405
    assert no_token.status_code == 401
    assert no_token.json()["error"]["code"] == "invalid_token"
    assert no_token.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_organization_limit_is_per_organization_and_configurable(
    database: Database, fresh_upstream: FakeUpstream, redis_server: RedisServer, members: None
) -> None:
    app = SERVICES["llm-proxy"].create_app(settings(database, fresh_upstream, redis_server.url,
                                                    llm_org_limit_per_hour=1000, llm_org_limits={str(ORG): 2}))  # fmt: skip
    with TestClient(app) as client:
        codes = [client.post("/v1/chat/completions", json=CHAT, headers=auth(user)).status_code
                 for user in (ADMIN, MEMBER, MEMBER)]  # fmt: skip
        elsewhere = client.post(
            "/v1/chat/completions", json=CHAT, headers=auth(uuid.uuid4(), OTHER_ORG)
        )

    assert codes == [200, 200, 429]
    assert elsewhere.status_code == 200


def test_without_redis_the_proxy_refuses_instead_of_counting_alone(
    database: Database, fresh_upstream: FakeUpstream, redis_server: RedisServer, members: None
) -> None:
    app = SERVICES["llm-proxy"].create_app(settings(database, fresh_upstream, redis_server.url))
    with TestClient(app) as client:
        redis_server.process.terminate()
        redis_server.process.wait(timeout=10)
        response = client.post("/v1/chat/completions", json=CHAT, headers=auth())
        metrics = client.get("/metrics").text

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "rate_limiter_unavailable"
    assert fresh_upstream.calls() == []
    assert "llm_ratelimit_unavailable_total 1.0" in metrics


def body(**fields: Any) -> bytes:
    return json.dumps({**CHAT, **fields}).encode()


DEEP = b'{"model": "valuecanvas-default", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
HUGE_NUMBER = b'{"model": "valuecanvas-default", "temperature": ' + b"9" * 5000 + b"}"


@pytest.mark.parametrize(
    ("content", "headers", "status", "code", "param"),
    [
        (b"{not json", None, 400, "invalid_json", None),
        (b"\xff\xfe", None, 400, "invalid_json", None),
        (DEEP, None, 400, "invalid_json", None),  # RecursionError in the parser
        (HUGE_NUMBER, None, 400, "invalid_json", None),  # past Python's int digit limit
        (b"[1, 2]", None, 400, "invalid_body", None),
        (json.dumps({"messages": CHAT["messages"]}).encode(), None, 400, "invalid_field", "model"),
        (body(model=7), None, 400, "invalid_field", "model"),
        (body(messages=[]), None, 400, "invalid_field", "messages"),
        (body(messages=[{"content": "hi"}]), None, 400, "invalid_field", "messages.0.role"),
        (body(messages=[{"role": "user", "content": 5}]), None, 400, "invalid_field",
         "messages.0.content.str"),
        (body(stream="true"), None, 400, "invalid_field", "stream"),
        (body(stream_options={"include_usage": 1}), None, 400, "invalid_field",
         "stream_options.include_usage"),
        (body(model="gpt-17"), None, 404, "model_not_found", "model"),
        (body(padding="x" * 1_100_000), None, 413, "request_too_large", None),
        (json.dumps(CHAT).encode(), {}, 401, "invalid_token", None),
        (
            json.dumps(CHAT).encode(),
            bearer(MEMBER, ORG, ttl_seconds=-3600),
            401,
            "invalid_token",
            None,
        ),
    ],
)  # fmt: skip
async def test_bad_input_gets_a_clear_4xx_and_is_not_billed(
    proxy: TestClient, fresh_upstream: FakeUpstream, database: Database,
    content: bytes, headers: dict[str, str] | None, status: int, code: str, param: str | None,
) -> None:  # fmt: skip
    response = proxy.post("/v1/chat/completions", content=content,
                          headers=auth() if headers is None else headers)  # fmt: skip

    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["param"] == param
    if param:
        assert repr(param) in error["message"] or param == "model"
    assert set(error) == {"message", "type", "param", "code"}
    assert fresh_upstream.calls() == []
    assert await ledger_rows(database, 1, wait_seconds=0.5) == []


async def test_usage_totals_for_the_caller_and_for_organization_admins(
    proxy: TestClient, database: Database
) -> None:
    for user, count in ((ADMIN, 2), (MEMBER, 3)):
        for _ in range(count):
            assert (
                proxy.post("/v1/chat/completions", json=CHAT, headers=auth(user)).status_code == 200
            )
    await ledger_rows(database, 5)

    mine = proxy.get("/v1/usage", headers=auth(MEMBER)).json()
    organization = proxy.get(
        "/v1/usage", params={"scope": "organization"}, headers=auth(ADMIN)
    ).json()
    forbidden = proxy.get("/v1/usage", params={"scope": "organization"}, headers=auth(MEMBER))

    assert mine["totals"]["requests"] == 3
    assert {row["user_id"] for row in mine["data"]} == {str(MEMBER)}
    assert organization["totals"]["requests"] == 5
    assert organization["totals"]["prompt_tokens"] == 5 * PROMPT_TOKENS
    assert (
        Decimal(organization["totals"]["cost_usd"])
        == 5 * Decimal("0.88") * (PROMPT_TOKENS + COMPLETION_TOKENS) / 10**6
    )
    assert {row["model"] for row in organization["data"]} == {"valuecanvas-default"}
    assert forbidden.status_code == 403


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "0"}, "start"),  # pydantic alone reads a number as a Unix time (1970)
        ({"end": "1700000000"}, "end"),
        ({"start": "2026-02-30"}, "start"),
        ({"scope": "everyone"}, "scope"),
    ],
)
def test_usage_refuses_what_its_document_does_not_describe(
    proxy: TestClient, params: dict[str, str], field: str
) -> None:
    response = proxy.get("/v1/usage", params=params, headers=auth())

    assert response.status_code == 422
    problem = response.json()
    assert problem["param"] == field
    assert [error["field"] for error in problem["errors"]] == [field]


def test_usage_refuses_an_end_before_the_start_and_takes_the_last_day(proxy: TestClient) -> None:
    backwards = proxy.get("/v1/usage", params={"start": "2026-05-02", "end": "2026-05-01"},
                          headers=auth())  # fmt: skip
    widest = proxy.get("/v1/usage", params={"start": "0001-01-01", "end": "9999-12-31"},
                       headers=auth())  # fmt: skip

    assert backwards.status_code == 400
    assert backwards.json()["error"]["param"] == "end"
    assert widest.status_code == 200, widest.text  # end + 1 day would overflow in Python
    assert widest.json()["totals"]["cost_usd"] == "0"


async def test_usage_prints_money_as_plain_decimals(proxy: TestClient, database: Database) -> None:
    offline = proxy.post("/v1/chat/completions", json=CHAT, headers=auth(ADMIN))
    assert offline.status_code == 200
    paid = proxy.post("/v1/chat/completions", json=CHAT, headers=auth())
    assert paid.status_code == 200
    await ledger_rows(database, 2)

    organization = proxy.get("/v1/usage", params={"scope": "organization"},
                             headers=auth(ADMIN)).json()  # fmt: skip

    costs = [row["cost_usd"] for row in organization["data"]] + [organization["totals"]["cost_usd"]]
    assert all(re.fullmatch(r"\d+(\.\d+)?", cost) for cost in costs), costs
    assert "E" not in json.dumps(organization)
    assert (
        Decimal(organization["totals"]["cost_usd"])
        == Decimal("0.88") * (PROMPT_TOKENS + COMPLETION_TOKENS) * 2 / 10**6
    )


@pytest.mark.parametrize("with_redis", [True, False], ids=["redis", "memory"])
async def test_a_repeated_request_id_is_still_limited_exactly_and_every_answer_is_recorded(
    database: Database, fresh_upstream: FakeUpstream, redis_server: RedisServer, members: None,
    tmp_path: Any, with_redis: bool,
) -> None:  # fmt: skip
    app = SERVICES["llm-proxy"].create_app(settings(
        database, fresh_upstream, redis_server.url if with_redis else None,
        llm_user_limit_per_hour=3, llm_ledger_journal=str(tmp_path / "ledger.jsonl"),
    ))  # fmt: skip
    same = {"X-Request-ID": "replayed-id"}
    with TestClient(app) as client:
        codes = [client.post("/v1/chat/completions", json=CHAT, headers={**auth(), **same}).status_code
                 for _ in range(5)]  # fmt: skip
        # Another user reusing that id neither shares its slots nor overwrites its rows.
        other = client.post("/v1/chat/completions", json=CHAT, headers={**auth(ADMIN), **same})
        rows = await ledger_rows(database, 4)

    assert codes == [200, 200, 200, 429, 429]
    assert other.status_code == 200
    assert len(rows) == 4
    assert {row["request_id"] for row in rows} == {"replayed-id"}  # kept for correlation
    assert len({row["completion_id"] for row in rows}) == 4
    assert sorted(str(row["user_id"]) for row in rows) == sorted([str(MEMBER)] * 3 + [str(ADMIN)])


def test_models_lists_the_logical_models(proxy: TestClient) -> None:
    models = proxy.get("/v1/models", headers=auth()).json()

    assert [model["id"] for model in models["data"]] == [
        "valuecanvas-default",
        "valuecanvas-fast",
        "valuecanvas-reasoning",
    ]


async def test_without_keys_the_offline_provider_answers_labelled_and_free(
    database: Database, redis_server: RedisServer, members: None, fresh_upstream: FakeUpstream
) -> None:
    app = SERVICES["llm-proxy"].create_app(settings(database, fresh_upstream, redis_server.url,
                                                    together_api_key=None, openai_api_key=None))  # fmt: skip
    with TestClient(app) as client:
        plain = client.post("/v1/chat/completions", json=CHAT, headers=auth())
        again = client.post("/v1/chat/completions", json=CHAT, headers=auth())
        with client.stream(
            "POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth()
        ) as streamed:
            events, done = sse(streamed)

    assert plain.headers["X-ValueCanvas-Provider"] == "offline"
    assert plain.json()["system_fingerprint"] == "offline"
    assert plain.json()["model"] == "offline-valuecanvas-default"
    assert plain.json()["choices"] == again.json()["choices"]  # deterministic
    assert done
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    rows = await ledger_rows(database, 3)
    assert {(row["provider"], row["cost_usd"]) for row in rows} == {("offline", Decimal(0))}
    assert fresh_upstream.calls() == []


def test_keys_emails_and_tokens_never_reach_the_logs(
    database: Database, fresh_upstream: FakeUpstream, redis_server: RedisServer, members: None,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from valuecanvas.core.logging import configure_logging, register_secrets

    proxy_settings = settings(database, fresh_upstream, redis_server.url, llm_log_bodies=True)
    configure_logging("llm-proxy", "INFO")
    register_secrets(
        *(secret.get_secret_value() for secret in proxy_settings.secret_fields().values())
    )
    leak = {"error": {"message": f"Incorrect API key provided: {TOGETHER_KEY}"}}
    fresh_upstream.script("together", {"status": 401, "body": leak})
    body = {"model": "valuecanvas-default",
            "messages": [{"role": "user", "content": "Mail jane.doe@acme.example or call +1 415 555 0100, key sk-live-abcdefghijklmnop"}]}  # fmt: skip
    app = SERVICES["llm-proxy"].create_app(proxy_settings)
    with TestClient(app) as client:
        response = client.post("/v1/chat/completions", json=body, headers=auth())

    logged = capfd.readouterr().out
    assert response.status_code == 200
    assert '"request body"' in logged  # bodies were logged, as configured...
    for secret in (
        TOGETHER_KEY,
        OPENAI_KEY,
        JWT_SECRET,
        "jane.doe@acme.example",
        "415 555 0100",
        "sk-live-abcdefghijklmnop",
    ):
        assert secret not in logged  # ...with the secrets and personal data redacted
    assert "[email]" in logged


async def test_without_redis_one_process_keeps_limits_in_memory_and_journals_the_ledger(
    database: Database, fresh_upstream: FakeUpstream, members: None, tmp_path: Any
) -> None:
    journal = tmp_path / "ledger.jsonl"
    app = SERVICES["llm-proxy"].create_app(settings(database, fresh_upstream, None, llm_user_limit_per_hour=2,
                                                    llm_ledger_journal=str(journal)))  # fmt: skip
    with TestClient(app) as client:
        codes = [
            client.post("/v1/chat/completions", json=CHAT, headers=auth()).status_code
            for _ in range(3)
        ]
        rows = await ledger_rows(database, 2)

    assert codes == [200, 200, 429]
    assert [row["status"] for row in rows] == ["succeeded", "succeeded"]
    assert journal.read_text() == ""  # drained into Postgres, then started over


def test_offline_requests_say_so_on_every_log_line(
    database: Database, redis_server: RedisServer, members: None, fresh_upstream: FakeUpstream,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from valuecanvas.core.logging import configure_logging

    configure_logging("llm-proxy", "INFO")
    app = SERVICES["llm-proxy"].create_app(settings(database, fresh_upstream, redis_server.url,
                                                    together_api_key=None, openai_api_key=None))  # fmt: skip
    with TestClient(app) as client:
        client.post("/v1/chat/completions", json=CHAT, headers=auth())

    lines = [
        json.loads(line) for line in capfd.readouterr().out.splitlines() if '"request_id"' in line
    ]
    request_line = next(line for line in lines if line["event"] == "request")
    assert request_line["provider"] == "offline"
    assert request_line["cost_usd"] == "0"
    assert all(line["offline"] is True for line in lines)


async def test_costs_stay_in_the_logs_as_numbers(
    proxy: TestClient, database: Database, capfd: pytest.CaptureFixture[str]
) -> None:
    from valuecanvas.core.logging import configure_logging

    configure_logging("llm-proxy", "INFO")
    capfd.readouterr()
    response = proxy.post("/v1/chat/completions", json=CHAT, headers=auth())

    (row,) = await ledger_rows(database, 1)
    lines = [
        json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")
    ]
    request_line = next(line for line in lines if line.get("event") == "request")
    assert response.status_code == 200
    assert row["cost_usd"] > 0  # a real, priced cost: 0.0000897600 has ten digits
    assert request_line["cost_usd"] != "[phone]"
    assert Decimal(request_line["cost_usd"]) == row["cost_usd"]


class SwallowingLedger:
    """A ledger whose reads swallow a cancellation, as redis-py's retry does: a cancelled
    read becomes a connection error, the command runs again, and returns normally."""

    async def drain_once(self, block_ms: int | None = 1000) -> int:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.01)
        return 0


async def test_the_drainer_stops_even_when_a_cancellation_is_swallowed() -> None:
    task = asyncio.create_task(run_drainer(SwallowingLedger()))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)

    assert task in done  # before the fix it drained on, after shutdown gave up on it
    assert task.cancelled()
