"""Prometheus metrics: requests by route/method/status, a latency histogram, in-flight requests.

Each app gets its own registry, so several apps in one process (tests) never collide. The
route label is the route template (``/v1/items/{id}``), never the raw path, to keep the
label set bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from starlette.routing import Match
from starlette.types import ASGIApp, Scope

# The *_created series double the output and no dashboard here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

UNMATCHED_ROUTE = "<unmatched>"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class ServiceMetrics:
    service: str
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        labels = ["service", "route", "method", "status"]
        self.requests = Counter(
            "http_requests_total", "HTTP requests handled.", labels, registry=self.registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from request start to the end of the response.",
            ["service", "route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight",
            "Requests being handled now.",
            ["service"],
            registry=self.registry,
        )
        self.caller_transactions = Counter(
            "db_caller_transactions_total",
            "Database transactions opened on behalf of a caller (with role and claims set).",
            ["service", "role"],
            registry=self.registry,
        )


def route_template(app: ASGIApp, scope: Scope) -> str:
    """The matched route's path template, or ``<unmatched>``."""
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return str(route.path)
    router = getattr(app, "router", None)
    for candidate in getattr(router, "routes", []):
        match, child = candidate.matches(scope)
        if match is Match.FULL:
            # An included router (FastAPI >= 0.165) names the matched route in its child scope.
            matched = candidate if hasattr(candidate, "path") else child.get("route")
            return str(getattr(matched, "path", UNMATCHED_ROUTE))
    return UNMATCHED_ROUTE
