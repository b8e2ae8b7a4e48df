"""CPU time and peak memory of process trees, and py-spy profiles, for ``bench/throughput.py``.

:class:`Meter` samples every watched process and its descendants in a thread:
CPU seconds (user + system) used between ``start()`` and ``stop()``, and the peak
resident set size of each process. :class:`Profile` runs ``py-spy record`` on a
process tree and summarises its collapsed stacks by own and total time.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

_MB = 1024 * 1024


@dataclass
class _Seen:
    role: str
    name: str
    first_cpu: float
    last_cpu: float
    peak_rss: int
    peak_uss: int = 0
    peak_pss: int = 0


@dataclass(frozen=True)
class ProcessUsage:
    role: str
    name: str
    pid: int
    cpu_s: float
    peak_rss_mb: float
    peak_uss_mb: float  # memory only this process holds
    peak_pss_mb: float  # its own, plus its share of what it shares (after fork)


@dataclass
class Usage:
    """What the watched processes used while the meter ran."""

    wall_s: float
    cpu_s: dict[str, float]  # by role
    processes: list[ProcessUsage] = field(default_factory=list)
    machine_busy_s: float = 0.0  # every process on the machine, from /proc/stat
    meter_process_s: float = 0.0  # this process (the bench: polling, sampling)

    @property
    def other_cpu_s(self) -> float:
        """CPU used by processes nobody asked to measure: other load on the machine."""
        return max(0.0, self.machine_busy_s - self.total_cpu_s - self.meter_process_s)

    @property
    def total_cpu_s(self) -> float:
        return sum(self.cpu_s.values())


class Meter:
    """Sample CPU and memory of process trees every ``interval`` seconds.

    CPU is user + system time of each process between ``start()`` and ``stop()``
    (a process born meanwhile counts from zero; one that exits between two samples
    loses at most one interval). Memory is the peak RSS of each process, and for
    roles in ``full_memory`` also its peak USS and PSS (from /proc/PID/smaps_rollup).
    """

    def __init__(self, interval: float = 0.2, full_memory: tuple[str, ...] = ("worker",)) -> None:
        self.interval = interval
        self.full_memory = full_memory
        self._roots: list[tuple[str, int, bool]] = []
        self._labels: dict[int, str] = {}
        self._seen: dict[tuple[int, float], _Seen] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._machine0 = 0.0
        self._self0 = 0.0
        self._tick = 0
        self._lock = threading.Lock()

    def watch(self, role: str, pid: int, *, tree: bool = True) -> None:
        """Count ``pid`` (and, with ``tree``, every descendant) under ``role``."""
        with self._lock:
            self._roots.append((role, pid, tree))
            self._labels.setdefault(pid, "main")

    def label(self, pid: int, name: str) -> None:
        """Name a process in the report ("pool", "beat"); others get their program name."""
        with self._lock:
            self._labels[pid] = name

    def start(self) -> None:
        self._seen.clear()
        self._sample(baseline=True)
        self._started = time.monotonic()
        self._machine0 = _machine_busy()
        self._self0 = cpu_times_self()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="meter", daemon=True)
        self._thread.start()

    def stop(self) -> Usage:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample(baseline=False)
        wall = time.monotonic() - self._started
        cpu: dict[str, float] = {}
        rows = []
        for (pid, _), s in sorted(self._seen.items()):
            used = max(0.0, s.last_cpu - s.first_cpu)
            cpu[s.role] = cpu.get(s.role, 0.0) + used
            rows.append(
                ProcessUsage(
                    s.role, s.name, pid, used, s.peak_rss / _MB, s.peak_uss / _MB, s.peak_pss / _MB
                )
            )
        return Usage(
            wall,
            cpu,
            rows,
            machine_busy_s=_machine_busy() - self._machine0,
            meter_process_s=cpu_times_self() - self._self0,
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._tick += 1
            self._sample(baseline=False)

    def _sample(self, *, baseline: bool) -> None:
        with self._lock:
            roots = list(self._roots)
            labels = dict(self._labels)
        for role, pid, tree in roots:
            try:
                root = psutil.Process(pid)
                procs = [root] + (root.children(recursive=True) if tree else [])
            except psutil.Error:
                continue
            full = role in self.full_memory
            for proc in procs:
                try:
                    with proc.oneshot():
                        times = proc.cpu_times()
                        used = times.user + times.system
                        key = (proc.pid, proc.create_time())
                        if full and (baseline or self._tick % 5 == 0):
                            # smaps_rollup costs about a millisecond a process: every
                            # fifth sample; the cheap RSS every sample.
                            mem = proc.memory_full_info()
                            rss, uss, pss = mem.rss, mem.uss, getattr(mem, "pss", 0)
                        else:
                            rss, uss, pss = proc.memory_info().rss, 0, 0
                        name = labels.get(proc.pid) or proc.name()
                except psutil.Error:
                    continue
                seen = self._seen.get(key)
                if seen is None:
                    # A process born while the meter runs used all its CPU inside it.
                    first = used if baseline else 0.0
                    self._seen[key] = _Seen(role, name, first, used, rss, uss, pss)
                else:
                    seen.name = name
                    seen.last_cpu = used
                    seen.peak_rss = max(seen.peak_rss, rss)
                    seen.peak_uss = max(seen.peak_uss, uss)
                    seen.peak_pss = max(seen.peak_pss, pss)


def cpu_times_self() -> float:
    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


def _machine_busy() -> float:
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


# profiles ------------------------------------------------------------------------


class Profile:
    """``py-spy record`` on a process and its children, written as collapsed stacks."""

    def __init__(self, pid: int, out: Path, *, rate: int = 100, idle: bool = False) -> None:
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None
        exe = Path(sys.executable).with_name("py-spy")
        self.cmd = [
            str(exe) if exe.exists() else "py-spy",
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--nonblocking",
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--output",
            str(out),
        ]
        if idle:  # wall-clock: waiting (locks, sockets, sleeps) counts too
            self.cmd.append("--idle")

    def start(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.out.with_suffix(".log"), "wb")  # noqa: SIM115 - closed with py-spy
        self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=log, start_new_session=True)
        log.close()
        time.sleep(0.5)  # py-spy attaches before the measured work starts

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
_PROCESS = re.compile(r"^process (?P<pid>\d+):")
OURS = ("campaigns/", "tasks/")


@dataclass
class ProfileSummary:
    samples: int
    own: list[tuple[str, int]]
    total: list[tuple[str, int]]  # Meridian's own functions only (campaigns/, tasks/)

    def lines(self, top: int = 20) -> list[str]:
        if not self.samples:
            return ["no samples"]
        out = [f"{self.samples} samples", "", "top functions by own time:"]
        out += [f"  {100 * n / self.samples:5.1f}%  {f}" for f, n in self.own[:top]]
        out += ["", "Meridian functions by total time (on the stack):"]
        out += [f"  {100 * n / self.samples:5.1f}%  {f}" for f, n in self.total[:top]]
        return out


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['func']} ({path})"


def summarise(raw: Path, *, pids: set[int] | None = None) -> ProfileSummary:
    """Own and total samples per function from py-spy's raw (collapsed) output.

    ``pids`` keeps only the stacks of those processes (e.g. the pool's).
    """
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        parts = stack.split(";")
        procs = [int(m["pid"]) for f in parts if (m := _PROCESS.match(f))]
        if pids is not None and (not procs or procs[-1] not in pids):
            continue
        frames = [_short(f) for f in parts if not f.startswith(("process ", "thread ("))]
        if not frames:
            continue
        n = int(count)
        samples += n
        own[frames[-1]] += n
        for f in set(frames):
            if f.rsplit("(", 1)[-1].startswith(OURS):
                total[f] += n
    return ProfileSummary(samples, own.most_common(), total.most_common())
