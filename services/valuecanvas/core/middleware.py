"""One ASGI middleware per request: the request id, the request's log line and its metrics.

One line per request: handlers add what they know (the llm-proxy adds provider, tokens
and cost) to that line rather than writing their own.

Pure ASGI (no body buffering, one wrapper of ``send``), so streamed responses pass through
untouched and the per-request cost stays small.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from valuecanvas.core.errors import unexpected_problem
from valuecanvas.core.logging import get_logger
from valuecanvas.core.metrics import ServiceMetrics, route_template
from valuecanvas.core.requestid import accept_or_generate

_log = get_logger("valuecanvas.request")
LOG_FIELDS = "log_fields"


def add_log_fields(scope: Scope, **fields: Any) -> bool:
    """Put fields on the request's one log line; False when there is no such line."""
    target: dict[str, Any] | None = scope.get("state", {}).get(LOG_FIELDS)
    if target is None:
        return False
    target.update(fields)
    return True


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: ServiceMetrics,
        router_app: ASGIApp,
        quiet_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.router_app = router_app
        self.quiet_paths = quiet_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None
        )
        request_id = accept_or_generate(incoming)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        in_flight = self.metrics.in_flight.labels(self.metrics.service)
        in_flight.inc()
        started = time.perf_counter()
        # Handlers read this to report their own overhead (the llm-proxy does), and add
        # fields to the request's one log line with :func:`add_log_fields`.
        fields: dict[str, Any] = {}
        state = scope.setdefault("state", {})
        state["request_started"] = started
        state[LOG_FIELDS] = fields
        status = 500
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                started_response = True
                status = message["status"]
                headers = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Anything a handler did not expect: the trace goes to the log with the request
            # id, the caller gets a problem naming only the request id.
            _log.error("unhandled error", exc_info=exc, path=scope["path"])
            if started_response:
                raise
            await unexpected_problem(scope["path"])(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            in_flight.dec()
            route = route_template(self.router_app, scope)
            method = scope["method"]
            self.metrics.requests.labels(self.metrics.service, route, method, str(status)).inc()
            self.metrics.latency.labels(self.metrics.service, route, method).observe(elapsed)
            if scope["path"] not in self.quiet_paths:
                _log.info(
                    "request",
                    method=method,
                    path=scope["path"],
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    **fields,
                )
            structlog.contextvars.clear_contextvars()
