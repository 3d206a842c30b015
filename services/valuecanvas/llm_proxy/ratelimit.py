"""The llm-proxy's limits: per user and per organization (with per-organization
overrides), per hour, enforced by the core's sliding window (valuecanvas.core.ratelimit)
in one atomic step: Redis shared by every replica, or memory for one local process."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from valuecanvas.core.ratelimit import Bucket, Decision, SlidingWindowLimiter
from valuecanvas.llm_proxy.config import Limits


@dataclass(frozen=True)
class ProxyRateLimiter:
    limits: Limits
    window: SlidingWindowLimiter

    def buckets(self, user_key: str, organization: UUID | None) -> list[Bucket]:
        buckets = [Bucket("user", user_key, self.limits.user_per_hour)]
        organization_limit = self.limits.for_organization(organization)
        if organization_limit is not None:
            buckets.append(Bucket("organization", str(organization), organization_limit))
        return buckets

    async def check(self, user_key: str, organization: UUID | None, admission_id: str) -> Decision:
        return await self.window.admit(self.buckets(user_key, organization), admission_id)
