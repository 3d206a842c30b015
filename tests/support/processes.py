"""A service run as a real process (``python -m valuecanvas.cli serve <name>``), its
settings from an env file, its output in a log file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.waiting import wait_until


def write_env(path: Path, **values: Any) -> Path:
    path.write_text("".join(f"{key.upper()}={value}\n" for key, value in values.items()))
    return path


@dataclass
class ServiceProcess:
    name: str
    port: int
    env_file: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        return self.spawn().wait_healthy()

    def spawn(self) -> ServiceProcess:
        """Start the process without waiting for it (``wait_healthy``): several start at once."""
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "valuecanvas.cli", "serve", self.name,
                 "--env-file", str(self.env_file), "--port", str(self.port)],
                stdout=sink, stderr=subprocess.STDOUT,
            )  # fmt: skip
        return self

    def wait_healthy(self) -> ServiceProcess:
        def healthy() -> bool:
            assert self.process is not None
            assert self.process.poll() is None, self.log.read_text()[-3000:]  # it died: stop
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200

        wait_until(healthy, what=f"{self.name} answering /healthz", ignore=(httpx.TransportError,))
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
