"""The one way tests wait: poll a check until it returns something truthy, and fail naming
what never happened (never give up silently, never sleep a fixed time and hope)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)

T = TypeVar("T")


def wait_until(
    check: Callable[[], T],
    *,
    what: str,
    timeout: float = 30,
    interval: float = 0.1,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """``check()``'s first truthy value; exceptions of the ``ignore`` types count as "not
    yet", any other propagates at once (an assertion inside ``check`` stops the wait)."""
    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
        retry=retry_if_result(lambda value: not value) | retry_if_exception_type(ignore),
    )
    try:
        return retrying(check)
    except RetryError:
        raise AssertionError(f"{what}: not within {timeout} s") from None
