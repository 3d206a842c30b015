"""Handles on the real servers the fixtures (tests/conftest.py) start: a migrated database
per test and a private Redis, and the login role the services' kind of connection uses."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

# A login role like the services': no superuser, member of the three API roles.
APP_ROLE = "test_app"
APP_PASSWORD = "test-app-password"


@dataclass(frozen=True)
class Database:
    name: str
    owner_dsn: str  # the migration role (superuser here)
    app_dsn: str  # the services' kind of login role: row-level security applies


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"
