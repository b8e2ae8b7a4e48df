"""Whether anyone is at the queues a run needs: the workers' and beats' heartbeats.

A run with due work needs all three queues: fan-out and schedule ticks (runs), the
pump and the sweeper (maintenance), send batches (send). A queue no worker has
reported consuming for MERIDIAN_WORKER_SILENCE_S is unattended: the run will sit
there, so the run page, ``meridian runs show`` and beat's log say which queue and
since when, rather than leaving an operator to find pump tasks piling up in Redis.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from campaigns import keys
from campaigns.domain.states import RunState

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)

_ACTIVE = (RunState.FANNING_OUT, RunState.RUNNING)


@dataclass(frozen=True)
class Unattended:
    queue: str
    silent_s: float | None  # seconds since a worker consuming it reported; None: never

    def sentence(self) -> str:
        since = (
            "no worker has ever reported consuming it"
            if self.silent_s is None
            else f"no worker has consumed it for {self.silent_s:.0f} s"
        )
        return (
            f"queue {self.queue!r}: {since}; start one with `celery -A tasks worker` "
            f"(all queues) or `-Q {self.queue}`"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"queue": self.queue, "silent_s": self.silent_s, "message": self.sentence()}


def unattended_queues(svc: Services) -> list[Unattended] | None:
    """The queues no worker consumes now; None when the broker did not answer."""
    beats = svc.dispatcher.heartbeats()
    if beats is None:
        return None
    limit = svc.settings.worker_silence_s
    found = []
    for queue in keys.QUEUES:
        age = beats.queue_age(queue)
        if age is None or age > limit:
            found.append(Unattended(queue, age))
    return found


def has_due_work(svc: Services, run_id: int, status: str) -> bool:
    if status == RunState.FANNING_OUT:
        return True
    return status == RunState.RUNNING and svc.delivery_queries.due_work(run_id, svc.now()) > 0


def run_warnings(svc: Services, run_id: int, status: str) -> list[str]:
    """Sentences for a run with due work that nobody will do; [] when all is attended."""
    if status not in _ACTIVE or not svc.has_dispatcher or not has_due_work(svc, run_id, status):
        return []
    unattended = unattended_queues(svc)
    if unattended is None:
        return ["the broker (Redis) does not answer: no worker can be at this run's work"]
    return [f"run {run_id} has due work, but {u.sentence()}" for u in unattended]


def log_unattended_runs(svc: Services) -> int:
    """Log a warning for each active run with due work and an unattended queue (beat
    calls it every MERIDIAN_WORKER_SILENCE_S); returns how many runs it warned of."""
    warned = 0
    for status in _ACTIVE:
        for run_id in svc.runs.ids_with_status(status):
            sentences = run_warnings(svc, run_id, status)
            for sentence in sentences:
                log.warning("%s", sentence)
            warned += bool(sentences)
    return warned
