"""Pieces of ``make bench`` beyond Meridian itself: the physical limit of an import,
the due set and queue depths while a run sends, and how figures grow with scale.

- :func:`raw_copy_s`: the same CSV loaded by the database's own fastest path into a
  table with no index, no key and no check (PostgreSQL: ``COPY ... FROM STDIN (FORMAT
  csv)``; SQLite: one ``executemany`` of the csv module's rows in one transaction).
  ``import_vs_raw_copy`` is Meridian's import time over this.
- :class:`DepthWatch`: samples the due set (``ZCARD``) and the ``send`` queue
  (``LLEN``) every half second: both must stay bounded however large the run.
- :func:`growth_table`: per-message figures of this run against an earlier JSON line
  (``--compare``), e.g. 1,000,000 patients against 100,000.
"""

from __future__ import annotations

import csv
import json
import threading
import time
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine

from campaigns import keys

RAW_TABLE = "bench_raw_patients"


def raw_copy_s(url: str, path: Path) -> float:
    """Seconds to load ``path`` raw into an unindexed table of text columns (dropped after)."""
    with path.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    columns = ", ".join(f'"{name}" text' for name in header)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {RAW_TABLE}")
            conn.exec_driver_sql(f"CREATE TABLE {RAW_TABLE} ({columns})")
        t0 = time.perf_counter()
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                sql = f"COPY {RAW_TABLE} FROM STDIN (FORMAT csv, HEADER true)"
                with cursor.copy(sql) as copy, path.open("rb") as raw:
                    while block := raw.read(1 << 20):
                        copy.write(block)
                cursor.close()
            else:
                marks = ", ".join("?" for _ in header)
                with path.open(encoding="utf-8", newline="") as handle:
                    reader = csv.reader(handle)
                    next(reader)
                    conn.exec_driver_sql(
                        f"INSERT INTO {RAW_TABLE} VALUES ({marks})",
                        list(map(tuple, reader)),
                    )
        elapsed = time.perf_counter() - t0
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {RAW_TABLE}")
        return elapsed
    finally:
        engine.dispose()


class DepthWatch:
    """The due set's and the send queue's largest size while it runs."""

    def __init__(self, url: str, every_s: float = 0.5) -> None:
        self.client = redis.Redis.from_url(url)
        self.every_s = every_s
        self.due_max = 0
        self.send_max = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DepthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pipe = self.client.pipeline(transaction=False)
                pipe.zcard(keys.DUE_BATCHES)
                pipe.llen("send")
                due, send = pipe.execute()
            except redis.RedisError:
                due = send = 0
            self.due_max = max(self.due_max, int(due))
            self.send_max = max(self.send_max, int(send))
            self._stop.wait(self.every_s)


# (label, key, how to make it per unit of work)
_GROWTH: list[tuple[str, str, str]] = [
    ("import, s per 1,000 patients", "import_s", "patients"),
    ("fan-out, s per 1,000 deliveries", "fan_out_s", "deliveries"),
    ("end to end, s per 1,000 messages", "end_to_end_s", "messages_sent"),
    ("CPU s per 1,000 messages", "cpu_s_per_1000_msgs", ""),
    ("worker peak RSS, MB", "worker_peak_rss_mb", ""),
    ("due set, most batches waiting", "due_set_max_batches", ""),
    ("send queue, most tasks waiting", "send_queue_max_tasks", ""),
]


def _per_unit(data: dict[str, Any], key: str, unit: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if not unit:
        return float(value)
    count = float(data.get(unit) or 0)
    return float(value) / count * 1000 if count else None


def _flat_results(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {str(data.get("database")): data}
    for value in data.values():
        if isinstance(value, dict) and "database" in value:
            found[str(value["database"])] = value
    return found


def growth_table(previous_json: Path, current: dict[str, Any]) -> list[str]:
    """Markdown lines: each figure here and in the earlier run, and the ratio."""
    before = _flat_results(json.loads(previous_json.read_text().strip().splitlines()[-1]))
    lines: list[str] = []
    for database, now in _flat_results(current).items():
        then = before.get(database)
        if then is None:
            continue
        lines.append(
            f"| {database}: measure | {then['patients']:,} patients | "
            f"{now['patients']:,} patients | ratio |"
        )
        lines.append("|---|---:|---:|---:|")
        rows = [
            *_GROWTH,
            *(
                (f"CPU s per 1,000 messages, {role}", f"cpu_s_per_1000_msgs_by_role.{role}", "")
                for role in sorted(now.get("cpu_s_per_1000_msgs_by_role", {}))
            ),
        ]
        for label, key, unit in rows:
            if "." in key:
                outer, inner = key.split(".")
                a = (then.get(outer) or {}).get(inner)
                b = (now.get(outer) or {}).get(inner)
            else:
                a, b = _per_unit(then, key, unit), _per_unit(now, key, unit)
            ratio = f"{b / a:.2f}x" if a and b is not None else "-"
            lines.append(
                f"| {label} | {'-' if a is None else f'{a:,.3f}'} | "
                f"{'-' if b is None else f'{b:,.3f}'} | {ratio} |"
            )
        lines.append("")
    return lines
