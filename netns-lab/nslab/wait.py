"""Polling with a deadline: the only way the lab waits (no fixed sleeps in callers)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not hold before its deadline (an AssertionError, so pytest shows it as a failure)."""


def wait_until(
    condition: Callable[[], T],
    timeout: float,
    what: str,
    interval: float = 0.2,
    detail: Callable[[], str] | None = None,
) -> T:
    """Return the first truthy value of ``condition()``; raise WaitTimeout after ``timeout`` seconds.

    ``detail`` is called on timeout and its text is appended to the error (e.g. a node's dump()).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = f"\n{detail()}" if detail else ""
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)


def holds_for(condition: Callable[[], bool], duration: float, interval: float = 0.25) -> bool:
    """True when ``condition()`` held on every poll for ``duration`` seconds ('never up' checks)."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        if not condition():
            return False
        time.sleep(interval)
    return bool(condition())
