"""Who holds a TCP port: the local platform's preflight names the process behind a busy
port (rather than supervisord's "ERROR (already started)" and a log line elsewhere).

Reads Linux's /proc: the listening sockets in /proc/net/tcp{,6}, and which process has
each socket open. Processes under the platform's own supervisord are not in the way.

    python -m valuecanvas.localdev.ports SERVICES [--offset N] [--others JSON] --supervisor-pidfile F
prints a JSON list of problems, one sentence each (empty when every port is free).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

_LISTEN = "0A"


def listening_sockets(proc: Path = Path("/proc")) -> dict[int, int]:
    """socket inode -> port, for every listening TCP socket (IPv4 and IPv6)."""
    sockets: dict[int, int] = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN:
                sockets[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return sockets


def socket_owners(inodes: set[int], proc: Path = Path("/proc")) -> dict[int, int]:
    """socket inode -> pid of a process that has it open (where /proc lets us look)."""
    owners: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            descriptors = list((entry / "fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                target = os.readlink(descriptor)
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = int(target[8:-1])
                if inode in inodes:
                    owners.setdefault(inode, int(entry.name))
    return owners


def _parent(pid: int, proc: Path) -> int | None:
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def descends_from(pid: int, ancestor: int, proc: Path = Path("/proc")) -> bool:
    current: int | None = pid
    while current and current > 1:
        if current == ancestor:
            return True
        current = _parent(current, proc)
    return False


def describe(pid: int, proc: Path = Path("/proc")) -> str:
    try:
        command = (proc / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        command = "?"
    return f"pid {pid} ({command.strip()[:120]})"


def problems(ports: dict[str, int], supervisor_pid: int | None) -> list[str]:
    """One sentence per port that something other than our own supervisord holds."""
    listening = listening_sockets()
    owners = socket_owners(set(listening))
    found = []
    for name, port in ports.items():
        holders = [inode for inode, bound in listening.items() if bound == port]
        if not holders:
            continue
        pids = [owners[inode] for inode in holders if inode in owners]
        if supervisor_pid and pids and all(descends_from(pid, supervisor_pid) for pid in pids):
            continue  # the platform's own program, already running
        holder = describe(pids[0]) if pids else "a process this user cannot see"
        found.append(f"port {port} ({name}) is already in use by {holder}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ports", help='JSON object of name -> port, e.g. {"web": 9000}')
    parser.add_argument("--others", default="{}", help="more ports (JSON), not offset")
    parser.add_argument("--offset", type=int, default=0, help="added to each of PORTS")
    parser.add_argument("--supervisor-pidfile", type=Path)
    args = parser.parse_args(argv)
    supervisor_pid = None
    if args.supervisor_pidfile and args.supervisor_pidfile.exists():
        text = args.supervisor_pidfile.read_text().strip()
        supervisor_pid = int(text) if text.isdigit() else None
    ports = {name: int(port) + args.offset for name, port in json.loads(args.ports).items()}
    ports.update(json.loads(args.others))
    print(json.dumps(problems(ports, supervisor_pid)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
