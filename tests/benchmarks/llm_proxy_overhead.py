"""Benchmark: the LLM proxy's overhead. A script, not a test.

Overhead = latency through the proxy minus latency of the same upstream called directly,
at fixed request rates (open loop: requests are sent on schedule whether or not earlier
ones have answered), reported at p50, p95 and p99.

By default it starts everything on this machine: a fixed-latency OpenAI-compatible
upstream, Postgres, Redis and one llm-proxy process with limits and the ledger switched
on, then measures at 50 and 200 requests per second and searches for the highest
sustainable rate. Any other OpenAI-compatible proxy can be measured the same way:

    python -m tests.benchmarks.llm_proxy_overhead \\
        --proxy-url http://127.0.0.1:4000/v1 --upstream-url http://127.0.0.1:9999/together/v1 \\
        --model my-model --header "Authorization: Bearer sk-..."

Only loopback addresses are used; every run is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx

from tests.support.tokens import user_token
from valuecanvas.localdev.postgres import TemporaryPostgres, ensure_service_user, free_port

REPO = Path(__file__).resolve().parents[2]
BODY = {
    "messages": [
        {"role": "user", "content": "Summarize the value realized this quarter in one line."}
    ]
}


@dataclass
class Run:
    target_rps: float
    sent: int = 0
    ok: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    reported_overhead_ms: list[float] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def achieved_rps(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    def pct(self, q: float, values: list[float] | None = None) -> float:
        data = sorted(values if values is not None else self.latencies_ms)
        if not data:
            return float("nan")
        return data[min(len(data) - 1, round(q / 100 * (len(data) - 1)))]


async def open_loop(
    url: str, model: str, headers: dict[str, str], rps: float, seconds: float
) -> Run:
    """Send ``rps`` requests a second for ``seconds``, on schedule (aiohttp: the generator
    must cost far less than what it measures on the same two cores)."""
    run = Run(rps)
    count = int(rps * seconds)
    interval = 1.0 / rps
    payload = {**BODY, "model": model}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:

        async def one(record: bool = True) -> None:
            started = time.perf_counter()
            try:
                async with session.post(url, json=payload, headers=headers) as response:
                    await response.read()
                    status, overhead = (
                        response.status,
                        response.headers.get("x-valuecanvas-overhead-ms"),
                    )
            except (aiohttp.ClientError, TimeoutError):
                run.errors += record
                return
            if not record:
                return
            if status != 200:
                run.errors += 1
                return
            run.ok += 1
            run.latencies_ms.append((time.perf_counter() - started) * 1000)
            if overhead is not None:
                run.reported_overhead_ms.append(float(overhead))

        # Warm the connection pool so connection setup is not measured.
        await asyncio.gather(*(one(record=False) for _ in range(20)))
        tasks = []
        begin = time.perf_counter()
        for index in range(count):
            delay = begin + index * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
            run.sent += 1
        await asyncio.gather(*tasks)
        run.duration_s = time.perf_counter() - begin
    return run


def wait_http(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def cpu_seconds(root: int) -> float:
    """User + system CPU of a process and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total


def start_redis(stack: ExitStack, workdir: Path) -> int:
    """A private redis-server on loopback (as the service user when running as root);
    returns its port."""
    import shutil

    port = free_port()
    user = ensure_service_user()
    directory = workdir / "redis"
    directory.mkdir()
    if user:
        shutil.chown(directory, user)
        workdir.chmod(0o755)
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--dir", str(directory)], stdout=subprocess.DEVNULL, user=user)  # fmt: skip
    stack.callback(redis.terminate)
    return port


def start_local_stack(
    stack: ExitStack, latency_ms: float, workers: int
) -> tuple[str, str, dict[str, str], str, int]:
    """Upstream, Postgres, Redis and one proxy; returns (proxy, upstream, headers, model, pid)."""
    workdir = Path(tempfile.mkdtemp(prefix="valuecanvas-bench-"))
    upstream_port = free_port()
    upstream = subprocess.Popen([sys.executable, "-m", "tests.support.upstream", str(upstream_port), str(latency_ms)],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    stack.callback(upstream.terminate)
    postgres = stack.enter_context(TemporaryPostgres())
    subprocess.run([sys.executable, "-m", "valuecanvas.cli", "migrate", "--dir", str(REPO / "migrations")],
                   env={**os.environ, "MIGRATION_DATABASE_URL": postgres.dsn()}, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    redis_port = start_redis(stack, workdir)
    secret = uuid.uuid4().hex * 2
    env_file = workdir / "proxy.env"
    env_file.write_text("\n".join([
        f"DATABASE_URL={postgres.dsn()}", f"REDIS_URL=redis://127.0.0.1:{redis_port}/0",
        f"JWT_SECRET={secret}", f"INTERNAL_TOKEN_SECRET={uuid.uuid4().hex * 2}",
        "TOGETHER_API_KEY=sk-benchmark-not-a-real-key-000000",
        f"TOGETHER_BASE_URL=http://127.0.0.1:{upstream_port}/together/v1",
        "LLM_USER_LIMIT_PER_HOUR=10000000", "LLM_ORG_LIMIT_PER_HOUR=10000000", "LOG_LEVEL=INFO",
    ]) + "\n")  # fmt: skip
    proxy_port = free_port()
    log = (workdir / "proxy.log").open("wb")
    proxy = subprocess.Popen([sys.executable, "-m", "valuecanvas.cli", "serve", "llm-proxy", "--env-file", str(env_file),
                              "--port", str(proxy_port), "--workers", str(workers)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    stack.callback(proxy.terminate)
    wait_http(f"http://127.0.0.1:{proxy_port}/healthz")
    wait_http(f"http://127.0.0.1:{upstream_port}/_calls")
    headers = {
        "Authorization": f"Bearer {user_token(uuid.uuid4(), uuid.uuid4(), secret=secret, ttl_seconds=7200)}"
    }
    return (f"http://127.0.0.1:{proxy_port}/v1", f"http://127.0.0.1:{upstream_port}/together/v1", headers,
            "valuecanvas-default", proxy.pid)  # fmt: skip


def measure(proxy_url: str, upstream_url: str, headers: dict[str, str], model: str, upstream_model: str,
            rps: float, seconds: float, proxy_pid: int | None = None) -> dict[str, float]:  # fmt: skip
    direct = asyncio.run(
        open_loop(f"{upstream_url}/chat/completions", upstream_model, {}, rps, seconds)
    )
    cpu_before = cpu_seconds(proxy_pid) if proxy_pid else 0.0
    proxied = asyncio.run(open_loop(f"{proxy_url}/chat/completions", model, headers, rps, seconds))
    cpu_used = cpu_seconds(proxy_pid) - cpu_before if proxy_pid else None
    row = {
        "target_rps": rps,
        "achieved_rps": round(proxied.achieved_rps, 1),
        "errors": proxied.errors,
        "sent": proxied.sent,
        **{f"direct_p{q}": round(direct.pct(q), 2) for q in (50, 95, 99)},
        **{f"proxy_p{q}": round(proxied.pct(q), 2) for q in (50, 95, 99)},
        **{f"overhead_p{q}": round(proxied.pct(q) - direct.pct(q), 2) for q in (50, 95, 99)},
    }
    if cpu_used is not None and proxied.sent:
        # The proxy's own CPU (all its processes, the ledger drainer included) per request.
        row["proxy_cpu_ms_per_request"] = round(cpu_used * 1000 / (proxied.sent + 20), 2)
    if proxied.reported_overhead_ms:
        row.update(
            {
                f"self_reported_p{q}": round(proxied.pct(q, proxied.reported_overhead_ms), 2)
                for q in (50, 95, 99)
            }
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--proxy-url", help="an OpenAI-compatible base URL (…/v1); default: start our own"
    )
    parser.add_argument("--upstream-url", help="the same upstream, called directly (…/v1)")
    parser.add_argument("--model", default="valuecanvas-default")
    parser.add_argument("--upstream-model", default="meta-llama/Llama-3.3-70B-Instruct-Turbo")
    parser.add_argument(
        "--header", action="append", default=[], help="'Name: value' sent to the proxy"
    )
    parser.add_argument(
        "--latency-ms", type=float, default=50.0, help="the local upstream's fixed latency"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each rate")
    parser.add_argument("--rates", default="50,200", help="fixed rates to measure")
    parser.add_argument(
        "--search",
        default="300,400,500,600,800,1000",
        help="rates tried for the highest sustainable",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per fixed rate; the median p95 is reported"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--workers", type=int, default=2, help="proxy worker processes (our own proxy)"
    )
    args = parser.parse_args()

    with ExitStack() as stack:
        pid: int | None = None
        if args.proxy_url:
            proxy_url, upstream_url = args.proxy_url.rstrip("/"), args.upstream_url.rstrip("/")
            headers = dict(h.split(": ", 1) for h in args.header)
            model = args.model
        else:
            proxy_url, upstream_url, headers, model, pid = start_local_stack(
                stack, args.latency_ms, args.workers
            )
        rows = []
        for rate in args.rates.split(","):
            runs = [measure(proxy_url, upstream_url, headers, model, args.upstream_model, float(rate), args.seconds, pid)
                    for _ in range(args.repeat)]  # fmt: skip
            runs.sort(key=lambda run: run["overhead_p95"])
            median = {
                **runs[len(runs) // 2],
                "runs_overhead_p95": [r["overhead_p95"] for r in runs],
            }
            print(json.dumps({"rate": median}), flush=True)
            rows.append(median)
        sustainable = None
        for rate in filter(None, args.search.split(",")):
            row = measure(
                proxy_url,
                upstream_url,
                headers,
                model,
                args.upstream_model,
                float(rate),
                args.seconds,
                pid,
            )
            ok = (
                row["errors"] == 0
                and row["achieved_rps"] >= 0.95 * float(rate)
                and row["overhead_p95"] < 250
            )
            print(json.dumps({"search": row, "sustainable": ok}), flush=True)
            if not ok:
                break
            sustainable = row
        result = {
            "proxy_workers": None if args.proxy_url else args.workers,
            "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
            "upstream_latency_ms": args.latency_ms,
            "rates": rows,
            "highest_sustainable": sustainable,
        }
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
