"""Time the patient import alone: ``python bench/import_time.py --patients 100000``.

The same synthetic CSV as ``make bench`` (campaigns.people.synthetic, seed 2026) is
imported into a fresh ledger on each database: a private PostgreSQL cluster
(tests.support.services) and a SQLite file. Reports wall time, this process's CPU
time (the honest figure on a shared machine) and, on PostgreSQL, the server's CPU,
then the raw COPY of the same CSV into an unindexed table and the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.phases import raw_copy_s  # noqa: E402
from campaigns.collector import collect_less  # noqa: E402
from campaigns.people.patients import import_patients  # noqa: E402
from campaigns.people.synthetic import write_patients_csv  # noqa: E402
from campaigns.store.db import Database  # noqa: E402
from campaigns.store.patients import PatientRepository  # noqa: E402
from tests.support.services import PostgresServer  # noqa: E402


def server_cpu_s(pid: int) -> float:
    """CPU seconds of a postmaster and every backend it has (had) so far."""
    master = psutil.Process(pid)
    total = float(sum(master.cpu_times()[:4]))
    for child in master.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += sum(child.cpu_times()[:2])
    return total


def time_import(url: str, csv: Path, server_pid: int | None, profile: Path | None) -> None:
    db = Database(url)
    db.upgrade()
    repo = PatientRepository(db)
    profiler = None
    if profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.002)
        profiler.start()
    server0 = server_cpu_s(server_pid) if server_pid else 0.0
    cpu0, t0 = time.process_time(), time.perf_counter()
    report = import_patients(csv, repo, region="US", actor="bench")
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    server = server_cpu_s(server_pid) - server0 if server_pid else 0.0
    if profiler is not None and profile is not None:
        profiler.stop()
        profile.write_text(profiler.output_text(unicode=False, color=False))
    db.engine.dispose()
    raw = raw_copy_s(url, csv)
    name = url.split(":", 1)[0]
    print(
        f"{name}: {report.inserted} inserted, {report.suppressed} suppressed; "
        f"wall {wall:.2f} s, CPU {cpu:.2f} s"
        + (f", server CPU {server:.2f} s" if server_pid else "")
        + f"; raw copy {raw:.2f} s, ratio {wall / raw:.1f}x; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--databases", default="postgresql,sqlite")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="pyinstrument, var/bench/")
    opts = parser.parse_args()
    collect_less()  # as ``meridian patients import`` runs (campaigns.collector)
    work = ROOT / "var" / "bench"
    work.mkdir(parents=True, exist_ok=True)
    csv = work / f"import-{opts.patients}.csv"
    if not csv.exists():
        write_patients_csv(csv, opts.patients, seed=2026, as_of=datetime.now(UTC).date())
    databases = opts.databases.split(",")
    pg = PostgresServer().start() if "postgresql" in databases else None
    try:
        for n in range(opts.repeat):
            for database in databases:
                profile = work / f"import-profile-{database}.txt" if opts.profile else None
                if database == "postgresql":
                    assert pg is not None and pg.data_dir is not None
                    pid = int((pg.data_dir / "data" / "postmaster.pid").read_text().split()[0])
                    time_import(pg.create_database(f"imp{n}"), csv, pid, profile)
                else:
                    with tempfile.TemporaryDirectory() as tmp:
                        time_import(f"sqlite:///{tmp}/ledger.db", csv, None, profile)
    finally:
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
