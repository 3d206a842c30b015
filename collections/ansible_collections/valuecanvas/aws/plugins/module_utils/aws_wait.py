"""Waiting for an AWS resource to reach a state, or to be gone, with boto3's own waiters
(their acceptors know each API's failure states): shared by the
valuecanvas.aws modules."""

from __future__ import annotations

import math
from typing import Any

from botocore.exceptions import WaiterError


def wait(
    module: Any, client: Any, waiter: str, *, what: str, delay: int = 15, **params: Any
) -> None:
    """``client.get_waiter(waiter).wait(**params)`` within ``module.params["wait_timeout"]``
    seconds; fails the module naming ``what`` and the last state seen otherwise."""
    attempts = max(1, math.ceil(module.params["wait_timeout"] / delay))
    try:
        client.get_waiter(waiter).wait(
            **params, WaiterConfig={"Delay": delay, "MaxAttempts": attempts}
        )
    except WaiterError as error:
        module.fail_json(
            msg=f"{what}: {waiter.replace('_', ' ')} not reached: {error.last_response}"
        )
