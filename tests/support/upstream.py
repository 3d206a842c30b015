"""A local OpenAI-compatible upstream that tests (and the benchmark) start and make fail.

One server plays several providers by path prefix: ``http://127.0.0.1:PORT/<provider>/v1``.
Each provider has a script of behaviours consumed one per request (then it answers
normally):

    {"status": 500} | {"status": 429, "retry_after": "1"} | {"status": 400, "body": {...}}
    {"delay": 2.0}             answer after a delay (a timeout, for a short proxy timeout)
    {"cut_after": 2}           stream 2 chunks, then drop the connection
    {"no_finish": true}        stream chunks and [DONE] but never a finish reason
    {"no_usage": true}         report no usage
    {"stall_first": 5.0}       open the stream, then send nothing for 5 s

``latency_ms`` adds a fixed latency to every answer (the benchmark's fixed-latency upstream).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.threaded import ThreadedApp

PROMPT_TOKENS, COMPLETION_TOKENS = 11, 7
WORDS = ["Value", " is", " what", " the", " customer", " gets", "."]


class UpstreamState:
    def __init__(self) -> None:
        self.scripts: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.calls: list[dict[str, Any]] = []
        self.completed: list[str] = []  # request ids answered in full
        self.latency_ms = 0.0
        self.lock = threading.Lock()

    def next_behaviour(self, provider: str) -> dict[str, Any]:
        with self.lock:
            script = self.scripts[provider]
            return script.pop(0) if script else {}


def build_app(state: UpstreamState) -> Starlette:
    async def completions(request: Request) -> Response:
        provider = request.path_params["provider"]
        body = await request.json()
        behaviour = state.next_behaviour(provider)
        request_id = request.headers.get("x-request-id", "")
        with state.lock:
            state.calls.append({
                "provider": provider, "model": body.get("model"), "stream": bool(body.get("stream")),
                "authorization": request.headers.get("authorization"), "request_id": request_id,
                "user": body.get("user"), "behaviour": behaviour, "at": time.monotonic(),
            })  # fmt: skip
        if state.latency_ms:
            await asyncio.sleep(state.latency_ms / 1000)
        if behaviour.get("delay"):
            await asyncio.sleep(behaviour["delay"])
        status = behaviour.get("status", 200)
        if status != 200:
            headers = (
                {"Retry-After": str(behaviour["retry_after"])} if "retry_after" in behaviour else {}
            )
            content = behaviour.get(
                "body", {"error": {"message": f"scripted {status}", "type": "server_error"}}
            )
            return JSONResponse(content, status_code=status, headers=headers)
        usage = None if behaviour.get("no_usage") else {
            "prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        }  # fmt: skip
        base = {
            "id": f"chatcmpl-{provider}-{request_id}",
            "created": int(time.time()),
            "model": body.get("model"),
        }
        if not body.get("stream"):
            answer: dict[str, Any] = {
                **base, "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(WORDS)},
                             "finish_reason": "stop"}],
            }  # fmt: skip
            if usage:
                answer["usage"] = usage
            with state.lock:
                state.completed.append(request_id)
            return JSONResponse(answer)

        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and usage

        async def events() -> AsyncIterator[bytes]:
            if behaviour.get("stall_first"):
                await asyncio.sleep(behaviour["stall_first"])
            for index, word in enumerate(WORDS):
                if "cut_after" in behaviour and index >= behaviour["cut_after"]:
                    raise ConnectionResetError("scripted cut")  # uvicorn drops the connection
                chunk = {**base, "object": "chat.completion.chunk",
                         "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}  # fmt: skip
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            if not behaviour.get("no_finish"):
                last = {**base, "object": "chat.completion.chunk",
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}  # fmt: skip
                yield f"data: {json.dumps(last)}\n\n".encode()
            if include_usage:
                yield f"data: {json.dumps({**base, 'object': 'chat.completion.chunk', 'choices': [], 'usage': usage})}\n\n".encode()
            with state.lock:
                state.completed.append(request_id)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def control(request: Request) -> Response:
        payload = await request.json()
        with state.lock:
            for provider, script in payload.get("scripts", {}).items():
                state.scripts[provider] = list(script)
            if "latency_ms" in payload:
                state.latency_ms = float(payload["latency_ms"])
            if payload.get("reset"):
                state.calls.clear()
                state.completed.clear()
        return JSONResponse({"ok": True})

    async def calls(_: Request) -> Response:
        with state.lock:
            return JSONResponse({"calls": list(state.calls), "completed": list(state.completed)})

    return Starlette(routes=[
        Route("/{provider}/v1/chat/completions", completions, methods=["POST"]),
        Route("/_control", control, methods=["POST"]),
        Route("/_calls", calls, methods=["GET"]),
    ])  # fmt: skip


class FakeUpstream:
    """Runs the upstream in a background thread; ``url(provider)`` is a provider's base URL."""

    def __init__(self, port: int | None = None) -> None:
        self.state = UpstreamState()
        self.server = ThreadedApp(build_app(self.state), what="the fake upstream", port=port)
        self.port = self.server.port

    def url(self, provider: str) -> str:
        return f"http://127.0.0.1:{self.port}/{provider}/v1"

    def start(self) -> FakeUpstream:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def script(self, provider: str, *behaviours: dict[str, Any]) -> None:
        self.state.scripts[provider] = list(behaviours)

    def reset(self) -> None:
        with self.state.lock:
            self.state.scripts.clear()
            self.state.calls.clear()
            self.state.completed.clear()
            self.state.latency_ms = 0

    def calls(self, provider: str | None = None) -> list[dict[str, Any]]:
        with self.state.lock:
            return [
                call
                for call in self.state.calls
                if provider is None or call["provider"] == provider
            ]


def main() -> None:
    """``python -m tests.support.upstream PORT [LATENCY_MS]``: run it in the foreground."""
    import sys

    port = int(sys.argv[1])
    state = UpstreamState()
    state.latency_ms = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    uvicorn.run(
        build_app(state), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
