"""The services a workflow needs, as real processes on free ports against one test
database: the orchestrator, the five agents, the llm-proxy (offline provider), and the
gateway when a test goes through it. Each finds the others through SERVICE_URLS.

Also a webhook receiver that serves HTTPS with a test CA (trustme) and keeps what it gets.
"""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import trustme

from tests.support.processes import ServiceProcess, write_env
from tests.support.servers import Database, RedisServer
from tests.support.tokens import JWT_SECRET
from tests.support.waiting import wait_until
from valuecanvas.catalogue import catalogue
from valuecanvas.localdev.postgres import free_port

INTERNAL_SECRET = "internal-secret-for-the-workflow-processes-0123"
AGENTS = [entry.name for entry in catalogue().values() if entry.autoscaling == "agent"]

# A value case from sample discovery notes, and its numbers checked by hand.
NOTES = (
    "Acme Logistics has grown fast and finance is stretched. Its invoices are paid late: "
    "DSO is 60 days today. Support tickets take 24 hours to resolve on average, and the "
    "team is hiring to keep up."
)
CASE = {
    "name": "Acme renewal",
    "account": {"name": "Acme Logistics", "industry": "Logistics",
                "annual_revenue": "10000000", "support_tickets_per_year": 20000},
    "discovery_notes": NOTES,
    "costs": {"one_time": "100000", "annual": "50000"},
    "horizon_years": 3,
}  # fmt: skip

# Checked by hand (the catalogue's factors and typical improvements, migration 0011):
# DSO 60 -> 48 days (-20 %), 10,000,000 x 0.0002191781 = 2,191.78 a day of DSO;
# resolution 24 -> 16.8 hours (-30 %), 20,000 tickets x 2.5 = 50,000 an hour.
# Expected scenario: 12 x 2,191.78 + 7.2 x 50,000 = 386,301.36 a year; cost 100,000 now
# and 50,000 a year; net flows 336,301.36 a year for 3 years; at 10 % (TARGET_DISCOUNT_RATE):
# NPV = -100,000 + 336,301.36 x 2.486852 (the annuity factor) = 736,331.71;
# ROI = (3 x 386,301.36 - 250,000) / 250,000 = 3.6356; payback 100,000 / 28,025.11 a month.
EXPECTED = {"annual_benefit": Decimal("386301.36"), "total_cost": Decimal("250000.00"),
            "npv": Decimal("736331.71"), "roi": Decimal("3.6356")}  # fmt: skip


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """An HTTPS endpoint on 127.0.0.1 (certificate from a test CA); answers ``status``."""

    ca: trustme.CA = field(default_factory=trustme.CA)
    status: int = 200
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.received.append(Received(dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1").configure_cert(context)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}/hooks/valuecanvas"

    def write_ca(self, path: Path) -> Path:
        self.ca.cert_pem.write_to_path(str(path))
        return path

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@dataclass
class WorkflowServices:
    """The processes, by name. ``start`` brings them all up; ``restart`` one of them."""

    database: Database
    redis: RedisServer
    folder: Path
    webhook_ca: Path | None = None
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    gateway: bool = False
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = ["llm-proxy", *AGENTS, "orchestrator"] + (["api-gateway"] if self.gateway else [])
        self.ports = {name: free_port() for name in names}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def env(self, name: str) -> dict[str, Any]:
        values: dict[str, Any] = {
            "database_url": self.database.app_dsn,
            "redis_url": self.redis.url,
            "jwt_secret": JWT_SECRET,
            "internal_token_secret": INTERNAL_SECRET,
            "log_level": "WARNING",
            "service_urls": json.dumps({other: self.url(other) for other in self.ports}),
        }
        if name == "llm-proxy":
            values |= {"llm_user_limit_per_hour": 100_000, "llm_org_limit_per_hour": 100_000}
        if name == "orchestrator":
            values |= {
                "orchestrator_executor_id": "test-orchestrator",
                "orchestrator_retry_interval_seconds": 0.2,
                "orchestrator_webhook_retry_interval_seconds": 0.2,
                "orchestrator_events_poll_seconds": 0.1,
            }
            if self.webhook_ca is not None:
                values["orchestrator_webhook_ca_file"] = str(self.webhook_ca)
        if name == "api-gateway":
            values |= {"gateway_limit_per_user": 100_000, "gateway_limit_per_organization": 100_000}
        return values | self.extra.get(name, {})

    def process(self, name: str) -> ServiceProcess:
        if name not in self.processes:
            env_file = write_env(self.folder / f"{name}.env", **self.env(name))
            self.processes[name] = ServiceProcess(
                name, self.ports[name], env_file, self.folder / f"{name}.log"
            )
        return self.processes[name]

    def start(self) -> WorkflowServices:
        """Start them all at once, then wait for each to answer."""
        for name in self.ports:
            self.process(name).spawn()
        for name in self.ports:
            self.process(name).wait_healthy()
        return self

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()


def wait_for_end(url: str, headers: dict[str, str], timeout: float = 60) -> dict[str, Any]:
    """Poll a run (GET url) until it has ended; its last answer."""
    last: dict[str, Any] = {}

    def ended() -> bool:
        nonlocal last
        response = httpx.get(url, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        last = response.json()
        return last["status"] in ("succeeded", "failed", "cancelled")

    wait_until(ended, what=f"{url} to end", timeout=timeout, ignore=(httpx.TransportError,))
    return last
