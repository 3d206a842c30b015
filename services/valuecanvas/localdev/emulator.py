"""The local AWS emulator (moto's server) on a loopback port, with AWS's managed IAM
policies loaded (the roles attach them). Used by the tests (:func:`aws_emulator`) and by
``make emulator``, which starts it in the background and returns once it answers::

    python -m valuecanvas.localdev.emulator --port 5000 --state-dir .state
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from valuecanvas.localdev import kube_standin
from valuecanvas.localdev.postgres import free_port

BIN = Path(sys.executable).parent


def _start(port: int, log: Path, *, detach: bool = False) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"},
            start_new_session=detach,
        )


def answers(endpoint: str) -> bool:
    try:
        httpx.get(f"{endpoint}/moto-api/", timeout=2)
    except httpx.TransportError:
        return False
    return True


def _wait(endpoint: str, process: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not answers(endpoint):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the AWS emulator did not start; see {log}")
        time.sleep(0.2)


@contextmanager
def aws_emulator(log: Path) -> Iterator[str]:
    """Start moto_server on a free loopback port; yield its endpoint URL; stop it."""
    port = free_port()
    process = _start(port, log)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait(endpoint, process, log, 60)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start the AWS emulator in the background.")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--state-dir", type=Path, default=Path(".state"))
    parser.add_argument("--kube-port", type=int, default=6443)
    args = parser.parse_args(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    # The sandbox's cluster has no API in the emulator: the argocd_bootstrap role talks to
    # the Kubernetes API stand-in instead (inventories/sandbox/group_vars/all/argocd.yml).
    kube = f"http://127.0.0.1:{args.kube_port}"
    if kube_standin.answers(kube):
        print(f"Kubernetes API stand-in already answering on {kube}")
    else:
        try:
            process = kube_standin.start(
                args.kube_port, args.state_dir / "kube-standin.log", detach=True
            )
        except RuntimeError as exc:
            print(f"emulator: {exc}", file=sys.stderr)
            return 1
        (args.state_dir / "kube-standin.pid").write_text(f"{process.pid}\n")
        print(f"Kubernetes API stand-in on {kube} (in memory)")
    endpoint = f"http://127.0.0.1:{args.port}"
    if answers(endpoint):
        print(f"emulator already answering on {endpoint}")
        return 0
    log = args.state_dir / "emulator.log"
    process = _start(args.port, log, detach=True)
    try:
        _wait(endpoint, process, log, 60)
    except RuntimeError as exc:
        process.terminate()
        print(f"emulator: {exc}", file=sys.stderr)
        return 1
    (args.state_dir / "emulator.pid").write_text(f"{process.pid}\n")
    print(f"emulator on {endpoint} (in memory: stopping it forgets everything)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
