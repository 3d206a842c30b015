"""The network between the orchestrator and the agents, slowed: a forwarder on 127.0.0.1
that holds each request ``delay`` seconds, then passes ``/<name>/<path>`` on to
``targets[name]/<path>`` and the answer back, headers and all.

A run then lasts at least its number of waves times ``delay``, so a test can kill the
orchestrator at a moment it chooses inside a run, whatever the speed of the machine. A
request held when its caller dies is still passed on, as a request already on the wire is.
"""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.threaded import ThreadedApp

# Not passed on: hop-by-hop headers, and the ones the other side sets again.
_DROPPED = {"host", "connection", "keep-alive", "transfer-encoding", "content-length",
            "content-encoding"}  # fmt: skip


class SlowLink:
    def __init__(self, targets: dict[str, str], delay: float) -> None:
        self.targets, self.delay = targets, delay
        self.app = ThreadedApp(
            Starlette(routes=[Route("/{name}/{path:path}", self._forward, methods=["GET", "POST"])]),
            what="the slow link",
        )  # fmt: skip

    def url(self, name: str) -> str:
        return f"{self.app.url}/{name}"

    def start(self) -> SlowLink:
        self.app.start()
        return self

    def stop(self) -> None:
        self.app.stop()

    async def _forward(self, request: Request) -> Response:
        name, path = request.path_params["name"], request.path_params["path"]
        body = await request.body()
        await asyncio.sleep(self.delay)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED}
        async with httpx.AsyncClient(timeout=60) as client:
            answer = await client.request(
                request.method, f"{self.targets[name]}/{path}", content=body, headers=headers
            )
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in _DROPPED}
        return Response(answer.content, status_code=answer.status_code, headers=kept)
