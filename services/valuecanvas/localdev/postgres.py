"""A throwaway PostgreSQL cluster from the embedded binaries (the ``pgserver`` wheel), or
from the directory VALUECANVAS_PG_BIN_DIR names.

Used by the tests and by ``valuecanvas gen-types --scratch``. The local platform runs its
long-lived cluster under supervisord instead (roles/local_platform); both find the
binaries with :func:`postgres_bin_dir`. Postgres refuses to run as root, so when root the
cluster runs as an unprivileged system user. That user must reach the binaries: when the
checkout (and its .venv) is in a folder only root can enter (root's home, a ``mktemp -d``),
the install tree is copied once to :data:`RUNTIME_ROOT`, outside the checkout.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SERVICE_USER = "valuecanvas"
# Where root keeps what the unprivileged user must reach (binaries, and the local
# platform's data when its state directory is private): traversable by everyone.
RUNTIME_ROOT = Path(os.environ.get("VALUECANVAS_RUNTIME_ROOT", "/var/lib/valuecanvas"))


def reachable_by_others(path: Path) -> bool:
    """Whether a user who is neither the owner nor in the group can reach ``path``: every
    directory from / down to it must be searchable by others (the x bit)."""
    path = path.resolve()
    return all(os.stat(part).st_mode & stat.S_IXOTH for part in (*reversed(path.parents), path))


def wheel_bin_dir() -> Path:
    """The ``pgserver`` wheel's own bin directory (pgserver/pginstall/bin)."""
    # Located without importing pgserver: its import starts machinery we do not use.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pgserver is not installed and VALUECANVAS_PG_BIN_DIR is not set")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def postgres_bin_dir() -> Path:
    """The directory of initdb, postgres and pg_ctl that the user running Postgres reaches."""
    override = os.environ.get("VALUECANVAS_PG_BIN_DIR")
    source = Path(override) if override else wheel_bin_dir()
    if os.geteuid() != 0 or reachable_by_others(source):
        return source
    return _reachable_copy(source)


def service_user_paths(state_dir: Path) -> dict[str, object]:
    """For the local platform's preflight: the binaries the Postgres user runs, and whether
    that user can reach the state directory (else its data goes under RUNTIME_ROOT)."""
    existing = state_dir.resolve()
    while not existing.exists():
        existing = existing.parent
    return {"bin": str(postgres_bin_dir()), "state_reachable": reachable_by_others(existing)}


def _reachable_copy(bin_dir: Path) -> Path:
    """A copy of the install tree (bin, lib, share) under RUNTIME_ROOT, made once per source
    and version, atomically (a rename), so concurrent callers never see half a copy.

    The wheel's binaries find their vendored libraries by a relative rpath
    (``$ORIGIN/../../../pgserver.libs``), so the copy keeps the layout: the package's
    folder around the install tree, and the ``<package>.libs`` folder beside it.
    """
    install = bin_dir.parent
    package = install.parent
    libs = package.parent / f"{package.name}.libs"
    marker = bin_dir / "postgres"
    key = f"{install.resolve()}:{marker.stat().st_size}:{marker.stat().st_mtime_ns}"
    target = RUNTIME_ROOT / f"pginstall-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    copied_bin = target / package.name / install.name / bin_dir.name
    if target.is_dir():
        return copied_bin
    RUNTIME_ROOT.mkdir(parents=True, exist_ok=True)
    RUNTIME_ROOT.chmod(0o755)
    staging = Path(tempfile.mkdtemp(prefix=".pginstall-", dir=RUNTIME_ROOT))
    try:
        shutil.copytree(install, staging / "tree" / package.name / install.name, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, staging / "tree" / libs.name, symlinks=True)
        for directory, _, _ in os.walk(staging / "tree"):
            os.chmod(directory, 0o755)  # noqa: S103 (the point: others must reach it)
        try:
            os.rename(staging / "tree", target)
        except OSError:
            if not target.is_dir():  # another process won the race: use its copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return copied_bin


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def ensure_service_user() -> str | None:
    """The user Postgres runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "/usr/sbin/useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
        )
    return SERVICE_USER


@dataclass
class TemporaryPostgres:
    """``with TemporaryPostgres() as pg: pg.dsn()`` - a fresh cluster on a free port."""

    port: int = field(default_factory=free_port)
    superuser: str = "postgres"
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="valuecanvas-pg-")))

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def dsn(
        self, database: str = "postgres", user: str | None = None, password: str | None = None
    ) -> str:
        credentials = user or self.superuser
        if password:
            credentials += f":{password}"
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(postgres_bin_dir() / args[0]), *args[1:]],
            check=check,
            capture_output=True,
            text=True,
            user=self._user,
        )

    def start(self) -> TemporaryPostgres:
        self._user = ensure_service_user()
        if self._user is not None:
            shutil.chown(self.root, self._user)
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", self.superuser,
            "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        self._start()
        return self

    def _start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.root / "postgres.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        if self.data_dir.exists():
            self._run(
                "pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", check=False
            )

    def restart(self) -> None:
        """Start again after :meth:`stop`, on the same port, with the same data."""
        self._start()

    def is_running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data_dir), "status", check=False).returncode == 0

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def wait_until_stopped(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.is_running() and time.monotonic() < deadline:
            time.sleep(0.1)

    def __enter__(self) -> TemporaryPostgres:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.cleanup()
