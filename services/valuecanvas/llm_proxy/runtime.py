"""What the llm-proxy opens for its lifetime: providers, breakers, the rate limiter, the
ledger and its drainer, and the LLM metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import Counter, Gauge
from starlette.requests import Request

from valuecanvas.core.breaker import BreakerState, CircuitBreaker
from valuecanvas.core.logging import get_logger
from valuecanvas.core.ratelimit import MemorySlidingWindow, RedisSlidingWindow, SlidingWindowLimiter
from valuecanvas.core.state import AppState
from valuecanvas.llm_proxy.config import Provider
from valuecanvas.llm_proxy.ledger import (
    JournalLedger,
    Ledger,
    RedisStreamLedger,
    flush,
    run_drainer,
    stop_if_cancelled,
)
from valuecanvas.llm_proxy.ratelimit import ProxyRateLimiter
from valuecanvas.llm_proxy.settings import LlmProxySettings
from valuecanvas.llm_proxy.upstream import RetryPolicy, Upstream

_log = get_logger("valuecanvas.llm_proxy")


class LlmMetrics:
    def __init__(self, state: AppState) -> None:
        registry = state.metrics.registry
        self.requests = Counter(
            "llm_requests_total", "Chat completions, by provider, model and outcome.",
            ["provider", "model", "status"], registry=registry,
        )  # fmt: skip
        self.tokens = Counter(
            "llm_tokens_total", "Tokens, by provider, model and kind (prompt or completion).",
            ["provider", "model", "kind"], registry=registry,
        )  # fmt: skip
        self.cost = Counter(
            "llm_cost_usd_total",
            "Spend in USD, by provider and model.",
            ["provider", "model"],
            registry=registry,
        )
        self.retries = Counter(
            "llm_upstream_retries_total",
            "Retried upstream attempts.",
            ["provider"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "llm_fallbacks_total",
            "Moves to the next provider.",
            ["from_provider", "to_provider"],
            registry=registry,
        )
        self.breaker_state = Gauge(
            "llm_breaker_state",
            "Circuit breaker: 0 closed, 1 half-open, 2 open.",
            ["provider"],
            registry=registry,
        )
        self.refusals = Counter(
            "llm_ratelimit_refusals_total",
            "Requests refused by a limit.",
            ["scope"],
            registry=registry,
        )
        self.limiter_unavailable = Counter(
            "llm_ratelimit_unavailable_total",
            "Requests refused because Redis did not answer.",
            registry=registry,
        )
        self.ledger_backlog = Gauge(
            "llm_ledger_backlog", "Ledger entries not yet in Postgres.", registry=registry
        )
        self.ledger_failures = Counter(
            "llm_ledger_write_failures_total",
            "Ledger entries that could not be queued.",
            registry=registry,
        )


@dataclass
class LlmRuntime:
    providers: list[Provider]
    upstream: Upstream
    breakers: dict[str, CircuitBreaker]
    limiter: ProxyRateLimiter
    ledger: Ledger
    metrics: LlmMetrics
    log_bodies: bool
    max_body_bytes: int

    @property
    def offline(self) -> bool:
        return self.providers[0].offline

    def models(self) -> list[str]:
        return self._models

    def __post_init__(self) -> None:
        # Fixed at start; asked on every request.
        self._models = sorted({model for provider in self.providers for model in provider.models})

    def publish_breakers(self) -> None:
        for name, breaker in self.breakers.items():
            # Reading the state through allow() would take the half-open probe; peek instead.
            state = breaker.state
            if (
                state is BreakerState.OPEN
                and breaker.clock() - breaker.opened_at >= breaker.cooldown_seconds
            ):
                state = BreakerState.HALF_OPEN
            self.metrics.breaker_state.labels(name).set(int(state))


async def _watch_backlog(runtime: LlmRuntime, interval_seconds: float) -> None:
    while True:
        stop_if_cancelled()
        try:
            runtime.metrics.ledger_backlog.set(await runtime.ledger.backlog())
        except Exception:  # a metric must never stop the service; cancellation still ends us
            stop_if_cancelled()
        runtime.publish_breakers()
        await asyncio.sleep(interval_seconds)


RUNTIME_STATE = "llm_runtime"


def runtime_of(request: Request) -> LlmRuntime:
    """The proxy's runtime, as the lifespan put it on the request's state."""
    runtime: LlmRuntime = getattr(request.state, RUNTIME_STATE)
    return runtime


@asynccontextmanager
async def lifespan_extension(state: AppState) -> AsyncIterator[Mapping[str, object]]:
    settings = state.settings
    assert isinstance(settings, LlmProxySettings)
    metrics = LlmMetrics(state)
    providers = settings.providers()
    breakers = {
        provider.name: CircuitBreaker(
            settings.llm_breaker_failures, settings.llm_breaker_cooldown_seconds
        )
        for provider in providers
    }
    upstream = Upstream(
        providers,
        policy=RetryPolicy(
            attempts=settings.llm_retry_attempts,
            initial_seconds=settings.llm_retry_initial_seconds,
            max_seconds=settings.llm_retry_max_seconds,
            first_byte_timeout_seconds=settings.llm_first_byte_timeout_seconds,
        ),
        breakers=breakers,
        timeout_seconds=settings.llm_upstream_timeout_seconds,
        on_retry=lambda provider: metrics.retries.labels(provider).inc(),
        on_fallback=lambda from_, to: metrics.fallbacks.labels(from_, to).inc(),
    )
    window: SlidingWindowLimiter
    ledger: Ledger
    limits = settings.limits()
    if state.redis is not None:
        window = RedisSlidingWindow(state.redis, limits.window_seconds)
        ledger = RedisStreamLedger(
            state.redis,
            state.pool,
            settings.llm_ledger_stream,
            settings.llm_ledger_claim_idle_seconds,
        )
    else:
        window = MemorySlidingWindow(limits.window_seconds)
        ledger = JournalLedger(Path(settings.llm_ledger_journal), state.pool)
    runtime = LlmRuntime(
        providers=providers,
        upstream=upstream,
        breakers=breakers,
        limiter=ProxyRateLimiter(limits, window),
        ledger=ledger,
        metrics=metrics,
        log_bodies=settings.llm_log_bodies,
        max_body_bytes=settings.llm_max_body_bytes,
    )
    _log.info(
        "providers",
        order=[provider.name for provider in providers],
        offline=runtime.offline,
        limiter=type(window).__name__,
        ledger=type(ledger).__name__,
    )
    tasks = [
        asyncio.create_task(run_drainer(ledger)),
        asyncio.create_task(_watch_backlog(runtime, settings.llm_metrics_interval_seconds)),
    ]
    try:
        yield {RUNTIME_STATE: runtime}
    finally:
        for task in tasks:
            task.cancel()
        _, stuck = await asyncio.wait(tasks, timeout=5)
        if stuck:
            _log.error("background tasks did not stop", count=len(stuck))
        await flush(ledger)
        await upstream.aclose()
