"""A stand-in for a service behind the gateway (the orchestrator is a skeleton until its
issue), run in a thread: it answers with what it received, slowly when asked, and streams
server-sent events one at a time, each only when the test lets it.

    /v1/value-cases[/...]        echo: method, path, query, headers, body
    /v1/value-cases/slow?s=2     the echo after s seconds
    /v1/workflows/events         SSE: event 1, then event 2 once ``release`` is set, then end
    /v1/workflows/flaky          503 for the first ``flaky`` calls, then the echo
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.threaded import ThreadedApp


class EchoUpstream:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.flaky = 0
        self.calls = 0
        self.lock = threading.Lock()
        app = Starlette(
            routes=[
                Route("/v1/workflows/events", self._events),
                Route("/v1/workflows/flaky", self._flaky, methods=["GET", "POST"]),
                Route("/v1/value-cases/slow", self._slow),
                Route(
                    "/v1/value-cases{rest:path}",
                    self._echo,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                ),
            ]
        )
        self.server = ThreadedApp(app, what="the echo upstream")
        self.port = self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> EchoUpstream:
        self.server.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.stop()

    async def _echo(self, request: Request) -> Response:
        with self.lock:
            self.calls += 1
        body = await request.body()
        return JSONResponse(
            {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "headers": [[k, v] for k, v in request.headers.items()],
                "body": body.decode("utf-8", "replace"),
            },
            headers={"x-upstream": "echo"},
        )

    async def _slow(self, request: Request) -> Response:
        await asyncio.sleep(float(request.query_params.get("s", "2")))
        return await self._echo(request)

    async def _flaky(self, request: Request) -> Response:
        with self.lock:
            self.calls += 1
            failing = self.flaky > 0
            self.flaky -= 1
        if failing:
            return JSONResponse({"error": "not yet"}, status_code=503)
        return JSONResponse({"ok": True})

    async def _events(self, _: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            yield b'event: progress\ndata: {"step": 1}\n\n'
            # The second event exists only after the test saw the first through the gateway.
            await asyncio.to_thread(self.release.wait, 20)
            yield b'event: progress\ndata: {"step": 2}\n\n'

        return StreamingResponse(events(), media_type="text/event-stream")
