"""Where the tests find the checkout and the programs of the virtualenv running them."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = REPO / "migrations"
BIN = Path(sys.executable).parent  # the virtualenv's bin/: ansible-playbook, molecule, valuecanvas
