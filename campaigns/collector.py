"""CPython's cycle collector in Meridian's processes.

**Workers** (tasks.app): the prefork parent freezes what it holds before it forks a
pool process (``gc.freeze``): the child never scans those objects again and never
writes to their pages, so they stay shared with the parent (a pool process held 64
MB of its own at 100,000 patients, against 77 before). Their thresholds stay
CPython's (700, 10, 10): collecting the youngest generation after 50,000 new objects
instead cost a third of a fan-out's CPU less in one process (``bench/stages.py``), but
in a worker, run after run, garbage outlived the slices that made it and piled up
(the largest pool process 161 MB at 300,000 patients and 239 MB at a million,
against 120 and 122 MB at the defaults) for no CPU saved end to end (0.419 and 0.418
ms a message at 300,000).

**An import from the command line** (``meridian patients import``), one pass over a
file in a process that then exits, collects after YOUNG_GENERATION new objects: an
import of 100,000 patients spent 0.5 to 1.3 s less CPU.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_GENERATION = 50_000


def collect_less() -> None:
    """Collect the youngest generation after YOUNG_GENERATION new objects; the older
    generations keep their thresholds."""
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, middle, oldest)


@contextmanager
def collecting_less() -> Iterator[None]:
    """``collect_less`` for the block, then the thresholds as they were."""
    before = gc.get_threshold()
    collect_less()
    try:
        yield
    finally:
        gc.set_threshold(*before)


def freeze_before_fork() -> None:
    """Move every object now alive to the collector's permanent generation (the
    pattern ``gc.freeze``'s documentation gives for a parent about to fork)."""
    gc.freeze()
