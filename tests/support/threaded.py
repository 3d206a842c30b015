"""An ASGI app that a test serves with uvicorn on 127.0.0.1, in a daemon thread."""

from __future__ import annotations

import threading
from typing import Any

import uvicorn

from tests.support.waiting import wait_until
from valuecanvas.localdev.postgres import free_port


class ThreadedApp:
    def __init__(self, app: Any, what: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.what = what
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error",
                                access_log=False, lifespan="off")  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        wait_until(lambda: self.server.started, what=self.what, timeout=10, interval=0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
