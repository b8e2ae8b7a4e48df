from __future__ import annotations

from datetime import UTC, datetime, timedelta

from campaigns.sending.batches import group_batches

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
