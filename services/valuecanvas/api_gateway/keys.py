"""API keys: made, checked and remembered.

A key is ``vc_<8 characters>_<43 characters>``. Its first part (``vc_`` and the 8) is the
prefix shown in lists; only the sha256 of the whole key is stored. A presented key is
looked up by that hash and trusted for at most ``cache_seconds`` (10 at most: revocation
and expiry take effect within that), and its use is written to ``last_used_at`` in
batches, off the request path.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import string
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from cachetools import TTLCache

from valuecanvas.api_gateway import repository
from valuecanvas.core.db import Pool
from valuecanvas.core.logging import get_logger

KEY_PREFIX = "vc_"
_ALPHABET = string.ascii_letters + string.digits
_log = get_logger("valuecanvas.api_gateway.keys")


@dataclass(frozen=True)
class NewKey:
    key: str  # shown once, never stored
    prefix: str
    digest: str


def generate_key() -> NewKey:
    prefix = KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(8))
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(key=key, prefix=prefix, digest=digest_of(key))


def digest_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX) and 20 <= len(value) <= 100


@dataclass(frozen=True)
class ApiKey:
    id: UUID
    organization_id: UUID
    principal_id: UUID | None
    scopes: frozenset[str]
    expires_at: datetime | None
    revoked_at: datetime | None
    organization_active: bool

    def refusal(self, now: datetime) -> str | None:
        """Why this key is refused now, or None."""
        if self.revoked_at is not None:
            return "API key revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "API key expired"
        if self.principal_id is None or not self.organization_active:
            return "API key's organization is not active"
        return None


class ApiKeyStore:
    """Keys by digest, each remembered for ``cache_seconds`` (an unknown key too, so a
    flood of bad keys costs one query per key per period)."""

    def __init__(self, pool: Pool, *, cache_seconds: float, cache_size: int = 10_000) -> None:
        self.pool = pool
        self._cache: TTLCache[str, ApiKey | None] | None = (
            TTLCache(maxsize=cache_size, ttl=cache_seconds, timer=time.monotonic)
            if cache_seconds > 0
            else None
        )
        self._used: dict[UUID, datetime] = {}

    async def find(self, key: str) -> ApiKey | None:
        digest = digest_of(key)
        if self._cache is not None and digest in self._cache:
            return self._cache[digest]
        found = await repository.api_key_by_digest(self.pool, digest)
        if self._cache is not None:
            self._cache[digest] = found
        return found

    def forget(self, digest: str) -> None:
        if self._cache is not None:
            self._cache.pop(digest, None)

    def used(self, key_id: UUID) -> None:
        self._used[key_id] = datetime.now(UTC)

    async def flush(self) -> int:
        """Write the uses seen since the last flush; returns how many keys."""
        if not self._used:
            return 0
        batch, self._used = self._used, {}
        try:
            await repository.record_key_use(self.pool, batch)
        except Exception as exc:  # the database is away: keep the uses for the next flush
            for key_id, when in batch.items():
                self._used.setdefault(key_id, when)
            _log.warning("last_used_at not written", error=type(exc).__name__, keys=len(batch))
            return 0
        return len(batch)


async def flush_periodically(store: ApiKeyStore, interval_seconds: float) -> None:
    while True:
        await asyncio.sleep(interval_seconds)
        await store.flush()
