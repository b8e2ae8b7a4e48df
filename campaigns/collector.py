"""How often CPython's cycle collector runs in Meridian's long-lived processes: the
workers (tasks.app) and the command line (campaigns.cli.main: an import of 100,000
patients spent 0.5 to 1.3 s less CPU).

A worker holds a large, long-lived heap (compiled templates, the lawful-time and
whereabouts caches, a slice's rows) and allocates fast: at the default thresholds
(700, 10, 10) the collector ran 1,684 times and took 1.76 s of CPU over one
20,000-patient fan-out and send in one process, 46 % of the fan-out's own CPU
(``bench/stages.py``, measured with ``gc.callbacks``). Meridian's own code makes few
reference cycles, so the youngest generation is collected after 50,000 new objects
instead of 700 (12 collections, 0.21 s, in the same run), and the prefork parent
freezes what it holds before it forks a pool process: the child never scans those
objects again, and never writes to their pages, so they stay shared with the parent.
"""

from __future__ import annotations

import gc

YOUNG_GENERATION = 50_000


def collect_less() -> None:
    """Collect the youngest generation after YOUNG_GENERATION new objects; the older
    generations keep their thresholds."""
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, middle, oldest)


def freeze_before_fork() -> None:
    """Move every object now alive to the collector's permanent generation (the
    pattern ``gc.freeze``'s documentation gives for a parent about to fork)."""
    gc.freeze()
