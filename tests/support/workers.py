"""Real ``celery -A tasks worker`` processes, for the integration tests and the benches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]


def shift_into_window() -> float:
    """Seconds that put Meridian's clock at 18:00 UTC: inside every US patient's hours."""
    now = datetime.now(UTC)
    return (now.replace(hour=18, minute=0, second=0, microsecond=0) - now).total_seconds()


class TimedOut(AssertionError):
    """A condition a test or bench waited for never came (an AssertionError, so
    pytest reports it as a failure)."""


class Workers:
    """Real ``celery -A tasks worker`` processes (with the embedded RedBeat beat)."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = {**os.environ, **env}
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
            cmd, env=self.env, stdout=log, stderr=log, cwd=ROOT, start_new_session=True
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


def wait_for(
    check: Callable[[], bool], timeout: float, what: str, on_fail: Callable[[], str] = lambda: ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimedOut(f"timed out after {timeout}s waiting for {what}\n{on_fail()}")
