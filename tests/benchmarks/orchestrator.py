"""Benchmark: the orchestrator's own cost. A script, not a test.

1. Overhead per step: a five-step chain whose agents answer at once (a stub that answers
   every /v1/run with a small JSON body), run one at a time; the run's time from the
   engine's start of it to its recorded end, over five, at p50 and p95. That is everything the
   orchestrator does around a step: checkpoints, progress rows, the token, the HTTP call.
2. Throughput: many five-step runs started together, through one orchestrator process
   per core (``--processes``; the API calls alternate between them, as a load balancer
   would between replicas); runs finished per second, from the first start to the last end.
3. One value case end to end with the real agents and the offline LLM provider: its
   latency, and each step's share.
4. The engine's own floor: DBOS alone in this process, five steps that do nothing, on the
   same database (a schema of its own): per step one at a time, and runs per second.

Everything on this machine, on loopback.

    python -m tests.benchmarks.orchestrator [--runs 600] [--sequential 50] [--processes N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.benchmarks.gateway import cli
from tests.benchmarks.llm_proxy_overhead import wait_http
from valuecanvas.catalogue import catalogue
from valuecanvas.localdev.postgres import TemporaryPostgres, free_port

REPO = Path(__file__).resolve().parents[2]
AGENTS = [entry.name for entry in catalogue().values() if entry.autoscaling == "agent"]
CHAIN = {"steps": [{"id": f"s{i}", "agent": "target", **({"needs": [f"s{i - 1}"]} if i > 1 else {})}
                   for i in range(1, 6)]}  # fmt: skip


def stub(port: int) -> None:
    """The instant agent: every POST /v1/run answers 200 with a small body."""
    from aiohttp import web

    async def run(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/v1/run", run)
    app.router.add_get("/healthz", run)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def serve(stack: ExitStack, workdir: Path, name: str, env: dict[str, str]) -> str:
    port = free_port()
    env_file = workdir / f"{name}-{port}.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    log = (workdir / f"{name}-{port}.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "valuecanvas.cli", "serve", name,
                                "--env-file", str(env_file), "--port", str(port)],
                               cwd=REPO, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    stack.callback(process.terminate)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz")
    return url


async def durations(dsn: str, runs: list[str]) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            """select id, status, steps, created_at, started_at, finished_at
                 from public.workflow_executions where id = any($1::uuid[])""",
            runs,
        )
    finally:
        await connection.close()
    return [dict(row) for row in rows]


async def engine_start(dsn: str, run: str) -> datetime:
    connection = await asyncpg.connect(dsn)
    try:
        epoch_ms = await connection.fetchval(
            "select created_at from dbos.workflow_status where workflow_uuid = $1", run
        )
    finally:
        await connection.close()
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)


async def wait_all(dsn: str, runs: list[str]) -> list[dict[str, Any]]:
    while True:
        rows = await durations(dsn, runs)
        if len(rows) == len(runs) and all(row["finished_at"] is not None for row in rows):
            return rows
        await asyncio.sleep(0.2)


async def start(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], body: dict[str, Any]
) -> str:
    response = await client.post(url, json=body, headers=headers)
    response.raise_for_status()
    return str(response.json()["workflow_id"])


async def measure(
    orchestrators: list[str], dsn: str, token: str, runs: int, sequential: int
) -> dict[str, Any]:
    orchestrator = orchestrators[0]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=60) as client:
        created = await client.post(f"{orchestrator}/v1/workflow-definitions", headers=headers,
                                    json={"name": "bench-chain", "definition": CHAIN})  # fmt: skip
        created.raise_for_status()
        body = {"definition": "bench-chain", "input": {}}
        url = f"{orchestrator}/v1/workflows"
        warm = [await start(client, url, headers, body) for _ in range(10)]
        await wait_all(dsn, warm)
        # 1. One at a time: the overhead per step.
        per_step, calls, gaps = [], [], []
        for _ in range(sequential):
            run = await start(client, url, headers, body)
            (row,) = await wait_all(dsn, [run])
            assert row["status"] == "succeeded", row
            steps = [json.loads(row["steps"])[f"s{i}"] for i in range(1, 6)]
            calls += [step["duration_ms"] for step in steps]
            stamps = [(datetime.fromisoformat(s["started_at"]), datetime.fromisoformat(s["finished_at"]))
                      for s in steps]  # fmt: skip
            # From the engine's start of the run (not its acceptance by the API) to its
            # recorded end.
            engine_began = await engine_start(dsn, run)
            per_step.append((row["finished_at"] - engine_began).total_seconds() * 1000 / 5)
            gaps += [(b[0] - a[1]).total_seconds() * 1000 for a, b in itertools.pairwise(stamps)]
        # 2. Together: throughput.
        began = time.perf_counter()
        gate = asyncio.Semaphore(16)

        async def one(index: int) -> str:  # the processes in turn, as a load balancer would
            async with gate:
                target = f"{orchestrators[index % len(orchestrators)]}/v1/workflows"
                return await start(client, target, headers, body)

        batch = await asyncio.gather(*(one(index) for index in range(runs)))
        submitted = time.perf_counter() - began
        rows = await wait_all(dsn, batch)
    assert all(row["status"] == "succeeded" for row in rows)
    first = min(row["created_at"] for row in rows)
    last = max(row["finished_at"] for row in rows)
    per_step.sort()
    return {
        "per_step_p50_ms": statistics.median(per_step),
        "per_step_p95_ms": per_step[int(len(per_step) * 0.95) - 1],
        "call_ms": statistics.median(calls),
        "gap_ms": statistics.median(gaps),
        "throughput_per_s": runs / (last - first).total_seconds(),
        "submit_seconds": submitted,
        "runs": runs,
    }


async def value_case(gateway_free: str, dsn: str, token: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    case = {
        "name": "Bench", "account": {"name": "Acme", "annual_revenue": "10000000",
                                     "support_tickets_per_year": 20000},
        "discovery_notes": "Invoices are paid late: DSO is 60 days. Support tickets take 24 "
                           "hours to resolve.",
        "costs": {"one_time": "100000", "annual": "50000"},
    }  # fmt: skip
    results = []
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(6):
            response = await client.post(
                f"{gateway_free}/v1/value-cases", json=case, headers=headers
            )
            response.raise_for_status()
            (row,) = await wait_all(dsn, [response.json()["workflow_id"]])
            steps = json.loads(row["steps"])
            results.append({"total_ms": (row["finished_at"] - row["created_at"]).total_seconds() * 1000,
                            "steps": {name: step.get("duration_ms") for name, step in steps.items()}})  # fmt: skip
    return results[-1] | {"runs": [r["total_ms"] for r in results[1:]]}


async def engine_floor(dsn: str, runs: int) -> dict[str, float]:
    from dbos import DBOS

    async def nothing(index: int) -> int:
        return index

    @DBOS.workflow(name="bench.floor")
    async def five(_: int) -> int:
        for index in range(5):
            await DBOS.run_step_async({"name": f"s{index}"}, nothing, index)
        return 0

    DBOS(config={"name": "bench-floor", "system_database_url": dsn.replace("postgresql://", "postgresql+psycopg://"),
                 "dbos_system_schema": "bench_floor", "application_version": "floor",
                 "executor_id": "bench-floor", "log_level": "WARNING"})  # fmt: skip
    DBOS.launch()
    try:
        for _ in range(5):
            await (await DBOS.start_workflow_async(five, 0)).get_result()
        began = time.perf_counter()
        for _ in range(30):
            await (await DBOS.start_workflow_async(five, 0)).get_result()
        sequential = (time.perf_counter() - began) / 30 * 1000 / 5
        began = time.perf_counter()
        handles = await asyncio.gather(*(DBOS.start_workflow_async(five, 0) for _ in range(runs)))
        await asyncio.gather(*(handle.get_result() for handle in handles))
        return {"per_step_ms": sequential, "throughput_per_s": runs / (time.perf_counter() - began)}
    finally:
        DBOS.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=600)
    parser.add_argument("--sequential", type=int, default=50)
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="orchestrator processes sharing the throughput part (one database); "
        "default: one per core",
    )
    parser.add_argument("--stub", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stub:
        stub(args.stub)
        return
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="valuecanvas-bench-orchestrator-"))
        stack.callback(shutil.rmtree, workdir, True)
        postgres = stack.enter_context(TemporaryPostgres())
        cli(
            {"MIGRATION_DATABASE_URL": postgres.dsn()}, "migrate", "--dir", str(REPO / "migrations")
        )
        secret = uuid.uuid4().hex * 2
        base = {"DATABASE_URL": postgres.dsn(), "JWT_SECRET": secret,
                "INTERNAL_TOKEN_SECRET": uuid.uuid4().hex * 2, "LOG_LEVEL": "WARNING"}  # fmt: skip
        token = cli(base, "create-admin", "--email", "bench@example.test", "--organization",
                    "Bench", "--slug", "bench")  # fmt: skip
        stub_port = free_port()
        process = subprocess.Popen([sys.executable, "-m", "tests.benchmarks.orchestrator", "--stub",
                                    str(stub_port)], cwd=REPO)  # fmt: skip
        stack.callback(process.terminate)
        wait_http(f"http://127.0.0.1:{stub_port}/healthz")
        stubbed = [
            serve(stack, workdir, "orchestrator", base | {
                "SERVICE_URLS": json.dumps({agent: f"http://127.0.0.1:{stub_port}" for agent in AGENTS}),
                "ORCHESTRATOR_EXECUTOR_ID": f"bench-stub-{index}"})
            for index in range(args.processes)
        ]  # fmt: skip
        overhead = asyncio.run(measure(stubbed, postgres.dsn(), token, args.runs, args.sequential))
        stack.enter_context(ExitStack())
        # 3. The real agents and the offline provider, behind a second orchestrator.
        urls: dict[str, str] = {}
        ports = {name: free_port() for name in ["llm-proxy", *AGENTS]}
        everyone = json.dumps({name: f"http://127.0.0.1:{port}" for name, port in ports.items()})
        for name in ["llm-proxy", *AGENTS]:
            env_file = workdir / f"{name}.env"
            env_file.write_text("".join(f"{k}={v}\n" for k, v in (base | {
                "SERVICE_URLS": everyone, "LLM_USER_LIMIT_PER_HOUR": "100000",
                "LLM_LEDGER_JOURNAL": str(workdir / "ledger.jsonl")}).items()))  # fmt: skip
            log = (workdir / f"{name}.log").open("wb")
            proc = subprocess.Popen([sys.executable, "-m", "valuecanvas.cli", "serve", name, "--env-file",
                                     str(env_file), "--port", str(ports[name])], cwd=REPO,
                                    stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
            stack.callback(proc.terminate)
            urls[name] = f"http://127.0.0.1:{ports[name]}"
        for url in urls.values():
            wait_http(f"{url}/healthz")
        real = serve(stack, workdir, "orchestrator", base | {
            "SERVICE_URLS": everyone, "ORCHESTRATOR_EXECUTOR_ID": "bench-real"})  # fmt: skip
        case = asyncio.run(value_case(real, postgres.dsn(), token))
        floor = asyncio.run(engine_floor(postgres.dsn(), 200))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"overhead per step (five-step chain, agents answering at once, one run at a time): "
        f"p50 {overhead['per_step_p50_ms']:.2f} ms, p95 {overhead['per_step_p95_ms']:.2f} ms "
        f"(of which the HTTP call to the agent: {overhead['call_ms']:.1f} ms; between one step's "
        f"end and the next's start: {overhead['gap_ms']:.1f} ms)"
    )
    print(
        f"throughput, {args.processes} orchestrator process(es): {overhead['throughput_per_s']:.1f} five-step runs/s "
        f"({overhead['runs']} runs started 16 at a time; submitting took {overhead['submit_seconds']:.1f} s)"
    )
    print(
        f"value case end to end (offline provider): {case['total_ms']:.0f} ms "
        f"(runs: {', '.join(f'{ms:.0f}' for ms in case['runs'])} ms)"
    )
    print(
        f"DBOS alone (five steps that do nothing, this process): {floor['per_step_ms']:.2f} ms "
        f"a step one run at a time; {floor['throughput_per_s']:.1f} runs/s with 200 together"
    )
    total = case["total_ms"]
    for name, ms in case["steps"].items():
        print(f"  {name}: {ms} ms ({(ms or 0) / total:.0%})")


if __name__ == "__main__":
    main()
