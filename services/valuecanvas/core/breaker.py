"""A circuit breaker per upstream (an LLM provider, a service behind the gateway): closed,
open after N consecutive failures, half-open after a cooldown to let one probe through. Per
process; each replica learns on its own.

Small enough that a library (pybreaker, aiobreaker) would add more than it saves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum


class BreakerState(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass
class CircuitBreaker:
    failure_threshold: int
    cooldown_seconds: float
    clock: Callable[[], float] = time.monotonic
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = field(default=0.0)
    _probe_in_flight: bool = False

    def allow(self) -> bool:
        """May a request go to this provider now? In half-open, only one probe at a time."""
        if self.state is BreakerState.OPEN:
            if self.clock() - self.opened_at < self.cooldown_seconds:
                return False
            self.state = BreakerState.HALF_OPEN
            self._probe_in_flight = False
        if self.state is BreakerState.HALF_OPEN:
            if self._probe_in_flight:
                return False
            self._probe_in_flight = True
        return True

    def record_success(self) -> None:
        self.state = BreakerState.CLOSED
        self.failures = 0
        self._probe_in_flight = False

    def record_failure(self) -> None:
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.failure_threshold:
            self.state = BreakerState.OPEN
            self.opened_at = self.clock()
            self._probe_in_flight = False
