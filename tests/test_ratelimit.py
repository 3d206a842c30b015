"""The core's sliding-window limiter (valuecanvas.core.ratelimit), which the llm-proxy
uses and the gateway will: several buckets admitted or refused together, exactly, across
replicas sharing a real Redis; and refused (never guessed) when Redis is gone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from tests.support.servers import RedisServer
from valuecanvas.core.ratelimit import (
    Bucket,
    MemorySlidingWindow,
    RateLimiterUnavailableError,
    RedisSlidingWindow,
    SlidingWindowLimiter,
)


@pytest.fixture(params=["redis", "memory"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[SlidingWindowLimiter]:
    if request.param == "memory":
        yield MemorySlidingWindow(window_seconds=60)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    connection = redis.Redis.from_url(server.url)
    yield RedisSlidingWindow(connection, window_seconds=60)
    await connection.aclose()


def admission() -> str:
    return uuid.uuid4().hex


async def test_every_bucket_must_admit_and_a_refusal_counts_nowhere(
    limiter: SlidingWindowLimiter,
) -> None:
    key, organization = Bucket("api_key", "k1", 3), Bucket("organization", "o1", 4)

    first = await limiter.admit([key, organization], admission())
    decisions = [await limiter.admit([key, organization], admission()) for _ in range(3)]
    # The organization still has one slot: the key's refusal did not spend it.
    other_key = await limiter.admit([Bucket("api_key", "k2", 3), organization], admission())
    full = await limiter.admit([Bucket("api_key", "k3", 3), organization], admission())

    assert (first.admitted, first.scope, first.limit, first.remaining) == (True, "api_key", 3, 2)
    assert [d.admitted for d in decisions] == [True, True, False]
    refused = decisions[-1]
    assert (refused.scope, refused.limit, refused.remaining) == ("api_key", 3, 0)
    assert 1 <= refused.reset_seconds <= 60
    assert (other_key.admitted, other_key.scope, other_key.remaining) == (
        True,
        "organization",
        0,
    )
    assert (full.admitted, full.scope) == (False, "organization")


async def test_two_replicas_sharing_redis_admit_exactly_the_limit(
    redis_server: RedisServer,
) -> None:
    # Two replicas: each its own client and connection pool (100 connections by default).
    clients = [redis.Redis.from_url(redis_server.url) for _ in range(2)]
    replicas = [RedisSlidingWindow(client, window_seconds=60) for client in clients]
    bucket = [Bucket("user", "u1", 50), Bucket("ip", "127.0.0.1", 1000)]
    try:
        decisions = await asyncio.gather(
            *(replicas[n % 2].admit(bucket, admission()) for n in range(200))
        )
    finally:
        for client in clients:
            await client.aclose()

    assert sum(d.admitted for d in decisions) == 50


@pytest.mark.parametrize(
    ("buckets", "message"),
    [([], "at least one bucket"), ([Bucket("user", "u", 0)], "at least 1")],
)
async def test_a_request_in_no_bucket_or_a_zero_limit_is_a_programming_error(
    limiter: SlidingWindowLimiter, buckets: list[Bucket], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await limiter.admit(buckets, admission())


async def test_redis_gone_is_an_error_not_an_admission(redis_server: RedisServer) -> None:
    connection = redis.Redis.from_url(redis_server.url, socket_timeout=1)
    limiter = RedisSlidingWindow(connection, window_seconds=60)
    assert (await limiter.admit([Bucket("user", "u", 5)], admission())).admitted
    redis_server.process.terminate()
    redis_server.process.wait(timeout=10)
    try:
        with pytest.raises(RateLimiterUnavailableError):
            await limiter.admit([Bucket("user", "u", 5)], admission())
    finally:
        await connection.aclose()
