"""Per-user and per-organization limits, checked together in one atomic step.

Redis: one Lua script reads Redis's own clock, trims both sliding-window logs, and admits
the request only if both are under their limits, adding it to both. Every replica runs the
same script against the same Redis, so no limit is exceeded by even one request, however
many replicas there are. If Redis does not answer, the caller is refused (503): limits are
never silently multiplied by falling back to per-replica counts.

Memory: the same algorithm for a single local process without Redis.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

import redis.asyncio as redis

from valuecanvas.llm_proxy.config import Limits

# KEYS[1]: the user's log; KEYS[2] (optional): the organization's log.
# ARGV: window ms, user limit, organization limit, member (an id the server generated for
# this admission, never a client-supplied value: a repeated member would count once). Returns
# {admitted, binding scope, its limit, remaining, ms until a slot frees}.
_SLIDING_WINDOW = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local window = tonumber(ARGV[1])
local limits = {tonumber(ARGV[2]), tonumber(ARGV[3])}
local scopes = {'user', 'organization'}
local counts = {}
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  counts[i] = redis.call('ZCARD', KEYS[i])
end
for i = 1, #KEYS do
  if counts[i] >= limits[i] then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    local reset = window
    if oldest[2] then reset = tonumber(oldest[2]) + window - now end
    return {0, scopes[i], limits[i], 0, reset}
  end
end
local binding, remaining = 1, limits[1] - counts[1] - 1
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[i], window)
  if limits[i] - counts[i] - 1 < remaining then
    binding, remaining = i, limits[i] - counts[i] - 1
  end
end
return {1, scopes[binding], limits[binding], remaining, window}
"""


@dataclass(frozen=True)
class Decision:
    admitted: bool
    scope: str  # the binding limit: "user" or "organization"
    limit: int
    remaining: int
    reset_seconds: int


class RateLimiterUnavailableError(Exception):
    pass


class RateLimiter(Protocol):
    async def check(
        self, user_key: str, organization: UUID | None, admission_id: str
    ) -> Decision: ...


class RedisRateLimiter:
    def __init__(
        self, client: redis.Redis, limits: Limits, prefix: str = "valuecanvas:ratelimit"
    ) -> None:
        self.limits = limits
        self.prefix = prefix
        self._script = client.register_script(_SLIDING_WINDOW)

    async def check(self, user_key: str, organization: UUID | None, admission_id: str) -> Decision:
        keys = [f"{self.prefix}:user:{user_key}"]
        organization_limit = self.limits.for_organization(organization)
        if organization_limit is not None:
            keys.append(f"{self.prefix}:org:{organization}")
        try:
            admitted, scope, limit, remaining, reset_ms = await self._script(
                keys=keys,
                args=[
                    self.limits.window_seconds * 1000,
                    self.limits.user_per_hour,
                    organization_limit or 0,
                    admission_id,
                ],
            )
        except (redis.RedisError, OSError) as exc:
            raise RateLimiterUnavailableError(type(exc).__name__) from exc
        return Decision(
            bool(admitted),
            scope.decode() if isinstance(scope, bytes) else str(scope),
            int(limit),
            int(remaining),
            max(1, math.ceil(int(reset_ms) / 1000)),
        )


class MemoryRateLimiter:
    """For one local process only; the same sliding window, in memory."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._logs: dict[str, deque[float]] = {}
        self._lock = asyncio.Lock()

    async def check(self, user_key: str, organization: UUID | None, admission_id: str) -> Decision:
        window = self.limits.window_seconds
        checks = [("user", f"user:{user_key}", self.limits.user_per_hour)]
        organization_limit = self.limits.for_organization(organization)
        if organization_limit is not None:
            checks.append(("organization", f"org:{organization}", organization_limit))
        async with self._lock:
            now = time.time()
            logs = []
            for scope, key, limit in checks:
                log = self._logs.setdefault(key, deque())
                while log and log[0] <= now - window:
                    log.popleft()
                if len(log) >= limit:
                    return Decision(
                        False, scope, limit, 0, max(1, math.ceil(log[0] + window - now))
                    )
                logs.append((scope, log, limit))
            for _, log, _ in logs:
                log.append(now)
            scope, log, limit = min(logs, key=lambda item: item[2] - len(item[1]))
            return Decision(True, scope, limit, limit - len(log), window)
