"""The local AWS emulator (moto's server) for the tests: one process on a free loopback
port, with AWS's managed IAM policies loaded (the roles attach them)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from valuecanvas.localdev.postgres import free_port

BIN = Path(sys.executable).parent


@contextmanager
def aws_emulator(log: Path) -> Iterator[str]:
    """Start moto_server on 127.0.0.1; yield its endpoint URL; stop it."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"},
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the AWS emulator did not start; see {log}") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=30)
