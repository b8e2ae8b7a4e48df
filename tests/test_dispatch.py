from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from campaigns.domain.models import Batch
from campaigns.errors import BrokerUnavailable
from campaigns.sending.batches import DueBatches, group_batches
from tasks.app import app as workers_app
from tasks.app import create_app as celery_app
from tasks.dispatcher import CeleryDispatcher
from tests.conftest import make_settings

T0 = datetime(2027, 10, 15, 14, 0, tzinfo=UTC)


def test_batches_hold_one_due_second_and_are_scored_by_their_latest_member() -> None:
    rows = [
        (1, T0),
        (2, T0 + timedelta(milliseconds=400)),
        (3, T0 + timedelta(seconds=1)),
        (4, T0 + timedelta(hours=1)),
    ]
    batches = list(group_batches(rows, run_of=9, size=100))
    assert [(b.delivery_ids, due) for due, b in batches] == [
        ([1, 2], T0 + timedelta(milliseconds=400)),
        ([3], T0 + timedelta(seconds=1)),
        ([4], T0 + timedelta(hours=1)),
    ]
    assert all(b.run_id == 9 for _, b in batches)


def test_batches_never_exceed_their_size() -> None:
    rows = [(i, T0) for i in range(1, 251)]
    sizes = [len(b.delivery_ids) for _, b in group_batches(rows, run_of=1, size=100)]
    assert sizes == [100, 100, 50]


# a broker that does not answer -------------------------------------------------------

# Nothing listens on port 1: every connection is refused at once.
NOBODY = "redis://127.0.0.1:1/0"


@pytest.fixture
def unanswered(tmp_path: Path) -> Iterator[CeleryDispatcher]:
    """The Celery dispatcher on a broker that refuses every connection."""
    yield CeleryDispatcher(celery_app(make_settings(tmp_path, redis_url=NOBODY)))
    workers_app.set_current()  # the new Celery app made itself the current one


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda d: d.queue_fan_out(1), id="fan-out"),
        pytest.param(lambda d: d.queue_send(Batch(1, [1])), id="send"),
        pytest.param(lambda d: d.put_schedule(1), id="put-schedule"),
        pytest.param(lambda d: d.remove_schedule(1), id="remove-schedule"),
        pytest.param(lambda d: d.waiting_sends(), id="waiting-sends"),
    ],
)
def test_a_broker_that_does_not_answer_is_the_cores_broker_unavailable(
    unanswered: CeleryDispatcher, call: Callable[[CeleryDispatcher], object]
) -> None:
    with pytest.raises(BrokerUnavailable, match=r"Redis \(the broker\) did not answer"):
        call(unanswered)


def test_a_due_set_that_does_not_answer_is_broker_unavailable() -> None:
    due = DueBatches(redis.Redis.from_url(NOBODY))
    with pytest.raises(BrokerUnavailable, match="nothing was queued"):
        due.add([(T0, Batch(1, [1]))])
