"""The chaos run CI keeps: workers killed with SIGKILL and Redis restarted mid-run.

bench/chaos.py runs the same thing at 20,000 recipients.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.chaos import ChaosPlan, run_chaos
from tests.support.services import RedisServer


@pytest.mark.parametrize("lose_redis_data", [False, True], ids=["redis-aof", "redis-empty"])
def test_every_patient_gets_exactly_one_text_through_kills_and_a_redis_restart(
    database_url: str, redis_server: RedisServer, tmp_path: Path, lose_redis_data: bool
) -> None:
    plan = ChaosPlan(
        recipients=300,
        rate=40,
        fault_rate=0.15,
        kills=2,
        redis_restarts=1,
        lose_redis_data=lose_redis_data,
        timeout_s=240,
    )
    events: list[str] = []
    result = run_chaos(
        plan,
        database_url=database_url,
        redis_server=redis_server,
        workdir=tmp_path / "chaos",
        say=events.append,
    )
    report = f"{result.to_dict()}\n" + "\n".join(events)
    assert result.kills == 2 and result.redis_restarts == 1, report
    # The server saw faults of every kind, so the run really was disturbed.
    assert {"429", "500", "lost"} <= set(result.faults), report
    assert result.run_status == "finished", report
    assert result.duplicates == 0, report
    assert result.never_sent == 0, report
    assert result.ledger == {"sent": plan.recipients}, report
