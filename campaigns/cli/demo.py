"""``meridian demo``: the cold-and-flu campaign, end to end, on the embedded defaults.

It expects a redis-server at MERIDIAN_REDIS_URL (``make demo`` starts a private one),
uses a fresh SQLite ledger and outbox under var/demo/, starts a real
``celery -A tasks worker`` (with its embedded RedBeat beat for the pump), runs the
campaign now, follows it with a progress bar, prints the summary and stops the
worker. Running it again starts from a clean ledger.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from rich.console import Console

from campaigns import keys
from campaigns.cli.progress import follow_run, print_summary
from campaigns.cli.startup import plugged
from campaigns.content.catalogue import apply_campaign
from campaigns.errors import BrokerUnavailable, MeridianError
from campaigns.people.patients import import_patients
from campaigns.sending import control
from campaigns.settings import load_settings

DEMO_DIR = Path("var/demo")
CLINIC = {
    "MERIDIAN_CLINIC_NAME": "Harbor Acupuncture & Wellness",
    "MERIDIAN_CLINIC_ADDRESS": "120 Harbor Street, Suite 4\nBoston, MA 02110",
    "MERIDIAN_CLINIC_PHONE": "(617) 555-0142",
    "MERIDIAN_CLINIC_TIMEZONE": "America/New_York",
    "MERIDIAN_EMAIL_FROM": "Harbor Acupuncture & Wellness <hello@harbor-acupuncture.example>",
}


def demo_shift(now: datetime) -> timedelta:
    """A clock shift that puts 'now' at 18:00 UTC today: inside every US patient's
    allowed hours (08:00 in Honolulu, 13:00 or 14:00 in New York, Sundays and
    Rhode Island weekends included), so the demo sends at any hour it is run."""
    target = now.replace(hour=18, minute=0, second=0, microsecond=0)
    return target - now


def run_demo(console: Console) -> None:
    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    DEMO_DIR.mkdir(parents=True)
    shift = demo_shift(datetime.now(UTC))
    env = {
        **CLINIC,
        "MERIDIAN_DATABASE_URL": f"sqlite:///{DEMO_DIR / 'meridian.db'}",
        "MERIDIAN_OUTBOX_DIR": str(DEMO_DIR / "outbox"),
        "MERIDIAN_SMS_RATE": "500",
        "MERIDIAN_SMS_BURST": "50",
        "MERIDIAN_EMAIL_RATE": "500",
        "MERIDIAN_EMAIL_BURST": "50",
        "MERIDIAN_CLOCK_SHIFT_S": str(int(shift.total_seconds())),
    }
    for key, value in env.items():
        os.environ.setdefault(key, value)
    settings = load_settings()
    svc = plugged(settings)
    # The demo's Redis is its own (make demo starts a private one): what it holds
    # belongs to the ledger just removed, so it goes too.
    try:
        svc.redis.flushdb()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise BrokerUnavailable(
            "the demo needs a redis-server at MERIDIAN_REDIS_URL, which did not answer "
            f"({type(exc).__name__}); `make demo` starts a private one"
        ) from exc
    console.print(f"[bold]Meridian demo[/bold] — {settings.clinic_name}")
    console.print(
        f"demo clock: {svc.now():%A %Y-%m-%d %H:%M} UTC (shifted so every US "
        "patient is inside their allowed hours; production runs unshifted)"
    )
    svc.db.upgrade()
    report = import_patients(
        Path("examples/patients.csv"), svc.patients, region=settings.default_region, actor="demo"
    )
    console.print(report.summary(), highlight=False)
    # The demo approves as the system: its campaign is the shipped, reviewed copy.
    applied = apply_campaign(
        svc, Path("examples/campaigns/cold-and-flu-season.yaml"), actor="demo", approve=True
    )
    console.print(
        f"campaign {applied.name} applied; lint findings: {len(applied.findings)} "
        f"({len(applied.unacknowledged)} unacknowledged)"
    )
    worker = _start_worker(env)
    try:
        run_id = control.run_now(svc, applied.name, actor="demo")
        if run_id is None:
            raise MeridianError("the demo occurrence already has a run")
        status = follow_run(svc, run_id, console, timeout_s=600)
    finally:
        _stop_worker(worker)
    print_summary(console, status)
    outbox = settings.outbox_dir.resolve()
    console.print(
        f"outbox: {outbox}/outbox.jsonl, one .txt per SMS in {outbox}/sms, "
        f"one .eml per email in {outbox}/email"
    )
    if status["status"] != "finished":
        raise MeridianError(f"run {run_id} did not finish (status {status['status']})")


def _start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = open(DEMO_DIR / "worker.log", "wb")  # noqa: SIM115 - lives as long as the worker
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tasks",
        "worker",
        "-B",
        "-Q",
        ",".join(keys.QUEUES),
        "-c",
        "2",
        "--loglevel",
        "INFO",
        "-s",
        str(DEMO_DIR / "beat-schedule"),
    ]
    return subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=log, stderr=log, start_new_session=True
    )


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    time.sleep(0.1)
