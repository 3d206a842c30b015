"""Benchmark: the latency the gateway adds. A script, not a test.

Added latency = latency through the gateway minus latency of the same upstream called
directly, at a fixed rate (open loop: requests go out on schedule whether or not earlier
ones have answered), at p50, p95 and p99; and the gateway's CPU per request.

Everything runs on this machine, on loopback: Postgres (migrated; an organization, its
admin and an API key made by the `valuecanvas` commands), Redis (the limits are on: every
request is one Lua call), a fast OpenAI-compatible upstream (tests.support.upstream, no
added latency), and one gateway process whose chat-completions route points at that
upstream. Each credential (an API key, a user JWT) is measured in turn:

    python -m tests.benchmarks.gateway [--rate 200] [--seconds 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path

from tests.benchmarks.llm_proxy_overhead import cpu_seconds, open_loop, start_redis, wait_http
from valuecanvas.localdev.postgres import TemporaryPostgres, free_port

REPO = Path(__file__).resolve().parents[2]


def cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "valuecanvas.cli", *args], cwd=REPO,
                            env={**os.environ, **env}, capture_output=True, text=True, check=True)  # fmt: skip
    return result.stdout.strip()


def start_stack(stack: ExitStack) -> tuple[str, str, dict[str, dict[str, str]], int]:
    """Returns (gateway URL, upstream URL, headers by credential, gateway pid)."""
    workdir = Path(tempfile.mkdtemp(prefix="valuecanvas-bench-gateway-"))
    stack.callback(shutil.rmtree, workdir, True)
    upstream_port = free_port()
    upstream = subprocess.Popen([sys.executable, "-m", "tests.support.upstream", str(upstream_port), "0"],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    stack.callback(upstream.terminate)
    postgres = stack.enter_context(TemporaryPostgres())
    cli({"MIGRATION_DATABASE_URL": postgres.dsn()}, "migrate", "--dir", str(REPO / "migrations"))
    redis_port = start_redis(stack, workdir)
    secret = uuid.uuid4().hex * 2
    env = {"DATABASE_URL": postgres.dsn(), "JWT_SECRET": secret}
    token = cli(env, "create-admin", "--email", "bench@example.test", "--organization", "Bench",
                "--slug", "bench")  # fmt: skip
    key = cli(env, "create-api-key", "--organization", "bench", "--name", "bench",
              "--scope", "value-cases:write")  # fmt: skip
    routes = [{"path": "/v1/chat/completions", "service": "llm-proxy", "subpaths": False,
               "methods": ["POST"], "timeout_seconds": 30}]  # fmt: skip
    env_file = workdir / "gateway.env"
    env_file.write_text("\n".join([
        f"DATABASE_URL={postgres.dsn()}", f"REDIS_URL=redis://127.0.0.1:{redis_port}/0",
        f"JWT_SECRET={secret}", f"INTERNAL_TOKEN_SECRET={uuid.uuid4().hex * 2}",
        f"GATEWAY_ROUTES={json.dumps(routes)}",
        # The upstream plays the llm-proxy: /together/v1/chat/completions.
        "SERVICE_URLS=" + json.dumps({"llm-proxy": f"http://127.0.0.1:{upstream_port}/together"}),
        "GATEWAY_LIMIT_PER_USER=10000000", "GATEWAY_LIMIT_PER_API_KEY=10000000",
        "GATEWAY_LIMIT_PER_ORGANIZATION=10000000", "LOG_LEVEL=INFO",
    ]) + "\n")  # fmt: skip
    port = free_port()
    log = (workdir / "gateway.log").open("wb")
    gateway = subprocess.Popen([sys.executable, "-m", "valuecanvas.cli", "serve", "api-gateway",
                                "--env-file", str(env_file), "--port", str(port)],
                               cwd=REPO, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    stack.callback(gateway.terminate)
    wait_http(f"http://127.0.0.1:{port}/healthz")
    wait_http(f"http://127.0.0.1:{upstream_port}/_calls")
    headers = {"api key": {"X-API-Key": key}, "user JWT": {"Authorization": f"Bearer {token}"}}
    return (f"http://127.0.0.1:{port}/v1", f"http://127.0.0.1:{upstream_port}/together/v1",
            headers, gateway.pid)  # fmt: skip


def measure(gateway: str, upstream: str, headers: dict[str, str], rate: float, seconds: float,
            pid: int) -> dict[str, float]:  # fmt: skip
    direct = asyncio.run(open_loop(f"{upstream}/chat/completions", "m", {}, rate, seconds))
    cpu_before = cpu_seconds(pid)
    through = asyncio.run(open_loop(f"{gateway}/chat/completions", "m", headers, rate, seconds))
    cpu_used = cpu_seconds(pid) - cpu_before
    return {
        "achieved_rps": round(through.achieved_rps, 1),
        "errors": through.errors,
        "sent": through.sent,
        **{f"direct_p{q}": round(direct.pct(q), 2) for q in (50, 95, 99)},
        **{f"gateway_p{q}": round(through.pct(q), 2) for q in (50, 95, 99)},
        **{f"added_p{q}": round(through.pct(q) - direct.pct(q), 2) for q in (50, 95, 99)},
        # The warm-up's 20 requests are in the CPU too.
        "gateway_cpu_ms_per_request": round(cpu_used * 1000 / (through.sent + 20), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each run")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per credential; the median p95 is kept"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results: dict[str, object] = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "rate": args.rate,
        "seconds": args.seconds,
    }
    with ExitStack() as stack:
        gateway, upstream, credentials, pid = start_stack(stack)
        for name, headers in credentials.items():
            runs = sorted((measure(gateway, upstream, headers, args.rate, args.seconds, pid)
                           for _ in range(args.repeat)), key=lambda run: run["added_p95"])  # fmt: skip
            median = {**runs[len(runs) // 2], "runs_added_p95": [run["added_p95"] for run in runs]}
            print(json.dumps({name: median}), flush=True)
            results[name] = median
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
