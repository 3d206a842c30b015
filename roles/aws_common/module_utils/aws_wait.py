"""Waiting for an AWS resource to reach a status, or to be gone: shared by the
repository's own modules (library/)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any


def wait_for_status(
    module: Any,
    read_status: Callable[[], str | None],
    *,
    what: str,
    ready: Collection[str] = (),
    failed: Collection[str] = (),
    gone: bool = False,
    interval: float = 15,
) -> None:
    """Poll ``read_status()`` (the status, or None once the resource does not exist) until it
    is in ``ready`` (or None, with ``gone``); fail the module on a ``failed`` status, or when
    ``module.params["wait_timeout"]`` seconds have passed."""
    deadline = time.monotonic() + module.params["wait_timeout"]
    while time.monotonic() < deadline:
        status = read_status()
        if gone and status is None:
            return
        if not gone and status in ready:
            return
        if not gone and status in failed:
            module.fail_json(msg=f"{what} is {status}")
        time.sleep(interval)
    module.fail_json(
        msg=f"{what} did not become {'deleted' if gone else ' or '.join(ready)} in time"
    )
