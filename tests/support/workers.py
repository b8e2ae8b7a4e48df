"""Real ``celery -A tasks worker`` processes, for the integration tests and the benches,
and what a test can see of them in Redis: the tasks they still have to do, the beat's ticks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO

import holidays
import redis

from campaigns import keys
from tests.support.settings import CLINIC, ROOT


def shift_into_window() -> float:
    """Seconds that put Meridian's clock at 18:00 UTC on a weekday that is nobody's
    holiday (today, or the next such day): inside every US patient's hours, even
    in the states that allow no texts on Sundays or holidays."""
    now = datetime.now(UTC)
    day = now.date()
    while day.weekday() >= 5 or _a_holiday_somewhere(day):
        day += timedelta(days=1)
    at = datetime(day.year, day.month, day.day, 18, tzinfo=UTC)
    return (at - now).total_seconds()


def _a_holiday_somewhere(day: date) -> bool:
    return any(
        day in holidays.country_holidays("US", subdiv=code, years=day.year)
        for code in ("RI", "LA", "AL", "UT")
    )


def worker_env(*, database_url: str, redis_url: str, outbox_dir: Path) -> dict[str, str]:
    """The MERIDIAN_* environment of workers for a test: its database, Redis and outbox,
    the sample clinic, rates high enough not to slow a test, and the clock shifted
    into every patient's sending hours."""
    return {
        "MERIDIAN_DATABASE_URL": database_url,
        "MERIDIAN_REDIS_URL": redis_url,
        "MERIDIAN_TEMPLATES_DIR": str(ROOT / "templates"),
        "MERIDIAN_OUTBOX_DIR": str(outbox_dir),
        "MERIDIAN_SMS_RATE": "1000",
        "MERIDIAN_SMS_BURST": "100",
        "MERIDIAN_EMAIL_RATE": "1000",
        "MERIDIAN_EMAIL_BURST": "100",
        "MERIDIAN_CLOCK_SHIFT_S": str(int(shift_into_window())),
        "MERIDIAN_ENV": "test",
        **{f"MERIDIAN_{k.upper()}": v for k, v in CLINIC.items()},
    }


class Workers:
    """Real ``celery -A tasks worker`` processes (with the embedded RedBeat beat).

    Each worker starts with the environment as it is at ``start()``: a test may change
    ``env`` (a rate, a transport) after this object was made and before it starts one.
    """

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = env
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def start(
        self, *, beat: bool = True, concurrency: int = 2, queues: str | None = None
    ) -> subprocess.Popen[bytes]:
        """A worker as the README starts one: every declared queue, unless ``queues``
        (``-Q``) picks some."""
        n = len(self.procs)
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tasks",
            "worker",
            *(["-Q", queues] if queues is not None else []),
            "-c",
            str(concurrency),
            "--loglevel",
            "INFO",
            "-n",
            f"w{n}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        if beat:
            cmd += ["-B", "-s", str(self.logdir / f"beat-{n}")]
        log = open(self.logdir / f"worker-{n}.log", "ab")  # noqa: SIM115
        self._logs.append(log)
        proc = subprocess.Popen(
            cmd,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=log,
            cwd=ROOT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def start_command(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        """Any other process of the deployment (beat, gunicorn), logged beside the workers."""
        log = open(self.logdir / f"worker-{name}.log", "ab")  # noqa: SIM115
        self._logs.append(log)
        proc = subprocess.Popen(
            cmd, env=self.env, stdout=log, stderr=log, cwd=ROOT, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def live(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def kill9(self, proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in self._logs:
            log.close()

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:] for p in sorted(self.logdir.glob("worker-*.log"))
        )


# kombu's Redis transport keeps a message a worker took in this hash until the task
# acks it; Meridian's tasks ack late, so that is once the task has run.
_UNACKED = "unacked"


def tasks_in_hand(client: redis.Redis, task: str, queue: str) -> int:
    """How many ``task`` messages wait in ``queue`` or are held by a worker, not yet done."""
    waiting = client.lrange(queue, 0, -1)
    held = [json.loads(v)[0] for v in client.hvals(_UNACKED)]
    return sum(1 for m in [*map(json.loads, waiting), *held] if _task_of(m) == task)


def _task_of(message: Mapping[str, object]) -> object:
    headers = message.get("headers")
    return headers.get("task") if isinstance(headers, Mapping) else None


def beat_ticks(client: redis.Redis, entry: str = "pump") -> int:
    """How many times the leading beat has fired the static entry ``entry`` (the pump,
    every second): a clock the workers keep, for a test to wait on."""
    meta = client.hget(keys.REDBEAT_PREFIX + entry, "meta")
    return int(json.loads(meta).get("total_run_count", 0)) if meta else 0
