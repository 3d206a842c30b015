"""Wait until every local service answers its readiness probe: one step of `make up`
instead of one per service (each of Ansible's steps costs about a second on its own).

    python -m valuecanvas.localdev.ready SERVICES [--timeout SECONDS]

SERVICES is a JSON object, name -> /readyz URL. The services are probed together, every
half second, until all answer 200 or the timeout passes. Prints a JSON object, name ->
"ready" or what the last probe got ("503: {...}", "connection refused"), and exits 1 when
a service is not ready.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx


async def _probe(client: httpx.AsyncClient, url: str) -> str:
    try:
        response = await client.get(url)
    except httpx.TransportError as exc:
        return str(exc) or type(exc).__name__
    if response.status_code == 200:
        return "ready"
    return f"{response.status_code}: {response.text[:300]}"


async def wait_ready(
    services: dict[str, str], within: float, interval: float = 0.5
) -> dict[str, str]:
    """name -> "ready" or the last answer, once every service is ready or time is up."""
    states = dict.fromkeys(services, "not probed")
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            waiting = [name for name, state in states.items() if state != "ready"]
            answers = await asyncio.gather(*(_probe(client, services[name]) for name in waiting))
            states.update(zip(waiting, answers, strict=True))
            if all(state == "ready" for state in states.values()) or time.monotonic() >= deadline:
                return states
            await asyncio.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("services", type=json.loads, help="JSON: name -> readiness URL")
    parser.add_argument("--timeout", type=float, default=90)
    args = parser.parse_args(argv)
    states = asyncio.run(wait_ready(args.services, args.timeout))
    print(json.dumps(states))
    return 0 if all(state == "ready" for state in states.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
