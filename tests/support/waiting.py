"""Waiting for a condition, never for a length of time.

A test that sleeps to let something happen is slow when the machine is idle and
wrong when it is loaded. It waits instead for what it needs to see, with a timeout
that only turns a hang into a failure that says what never came.
"""

from __future__ import annotations

import time
from collections.abc import Callable

_POLL_S = 0.05


class TimedOut(AssertionError):
    """A condition a test or bench waited for never came (an AssertionError, so
    pytest reports it as a failure)."""


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    on_fail: Callable[[], str] = lambda: "",
) -> None:
    """Return as soon as ``predicate()`` is true; TimedOut after ``timeout`` seconds.

    ``what`` names the condition in the failure ("the run to finish"); ``on_fail``
    adds what would explain it (a worker's log), read only on failure.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise TimedOut(f"timed out after {timeout:g} s waiting for {what}\n{on_fail()}")
        time.sleep(_POLL_S)
