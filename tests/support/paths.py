"""Where the tests find the checkout and the programs of the virtualenv running them."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from valuecanvas.localdev.postgres import wheel_bin_dir

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = REPO / "migrations"
BIN = Path(sys.executable).parent  # the virtualenv's bin/: ansible-playbook, molecule, valuecanvas


def copy_wheel_postgres(into: Path) -> Path:
    """The pgserver wheel's PostgreSQL (and its bundled libraries) copied under `into`, as a
    .venv inside a checkout has them; returns the copy's bin/."""
    wheel = wheel_bin_dir().parents[2]
    shutil.copytree(wheel / "pgserver" / "pginstall", into / "pgserver" / "pginstall")
    if (wheel / "pgserver.libs").is_dir():
        shutil.copytree(wheel / "pgserver.libs", into / "pgserver.libs")
    return into / "pgserver" / "pginstall" / "bin"
