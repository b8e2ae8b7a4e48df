"""The chaos run: an SMS campaign sent while workers are killed and Redis restarts.

Shared by the small chaos test CI runs (tests/integration/test_chaos.py) and the
large one (bench/chaos.py). The campaign goes through real ``celery -A tasks
worker -B`` processes and the real twilio client to the local Twilio-compatible
server, which answers a fraction of requests with 429, 500, or by dropping the
reply after accepting the message. Meanwhile workers are killed with SIGKILL
(each replaced by a fresh one) and redis-server is killed and restarted.

Nothing is told to recover: the run must finish by itself. The verdict comes from
the server's own record of what it accepted: every patient has a unique first
name (``Chaos000001``...), so each accepted body names its recipient.
"""

from __future__ import annotations

import contextlib
import csv
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from campaigns.content import catalogue
from campaigns.people.patients import import_patients
from campaigns.people.synthetic import COLUMNS
from campaigns.sending import control
from campaigns.services import Services
from campaigns.settings import Settings
from tasks.app import dispatcher
from tests.support.services import RedisServer
from tests.support.settings import ROOT
from tests.support.twilio_server import TwilioServer
from tests.support.waiting import TimedOut, wait_until
from tests.support.workers import Workers, shift_into_window

SID = "AC" + "c" * 32
TOKEN = "chaos-token"
CAMPAIGN = "chaos"
_NAME = re.compile(r"Chaos(\d{6})")
# Fictional 555-01xx lines under real area codes (the import checks numbers).
_AREA_CODES = ("312", "773", "872", "630", "708", "847", "217", "309", "618", "815")


def _phone(i: int) -> str:
    """Patient ``i``'s own number: one text per number per occurrence, so no two
    patients may share one. Lines 555-0000..9999 of each area code (100,000 numbers);
    only the local Twilio-compatible server ever sees them."""
    return f"({_AREA_CODES[(i // 10_000) % len(_AREA_CODES)]}) 555-{i % 10_000:04d}"


_CAMPAIGN_YAML = """\
name: chaos
description: Chaos run; SMS only, every patient.
channels: [sms]
channel_policy: all_consented
templates: cold-and-flu-season
audience: {}
schedule:
  once: 2030-01-01
  send_time: "10:00"
limits:
  max_attempts: 20
  retry_base_s: 0.5
  frequency_cap_days: 0
compliance:
  acknowledged:
    - rule: names-influenza
      template: cold-and-flu-season/sms.txt.j2
      line: 1
      phrase: flu
      sentence: '{{ clinic.name }}: Hi {{ patient.first_name or "there" }}, cold and
        flu season is here.'
      reason: "'cold and flu season' names the season; no health claim"
      by: chaos-test
"""


@dataclass(frozen=True)
class ChaosPlan:
    recipients: int
    rate: float  # the account's SMS rate, shared by every worker
    fault_rate: float = 0.1  # fraction of create requests answered 429, 500 or lost
    kills: int = 3  # workers killed with SIGKILL over the run
    redis_restarts: int = 1
    lose_redis_data: bool = False  # restart Redis empty instead of from its AOF
    workers: int = 2
    concurrency: int = 2
    timeout_s: float = 600.0
    seed: int = 1


@dataclass
class ChaosResult:
    database: str
    recipients: int
    accepted: int
    duplicates: int
    never_sent: int
    kills: int
    redis_restarts: int
    seconds: float
    run_status: str
    ledger: dict[str, int]
    faults: dict[str, int] = field(default_factory=dict)
    recovery: dict[str, int] = field(default_factory=dict)  # what the logs say was repaired

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def write_patients(path: Path, count: int) -> None:
    """``count`` patients who all agreed to texts, each with a unique first name."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        for i in range(1, count + 1):
            writer.writerow(
                {
                    "external_id": f"C{i:06d}",
                    "first_name": f"Chaos{i:06d}",
                    "last_name": "Test",
                    "phone": _phone(i),
                    "timezone": "America/Chicago",
                    "state": "IL",
                    "tags": "active",
                    "sms_consent": "yes",
                    "sms_consent_at": "2026-01-05T10:00:00-06:00",
                    "sms_consent_source": "front-desk",
                }
            )


def chaos_env(
    database_url: str, redis_url: str, twilio_url: str, workdir: Path, rate: float
) -> dict[str, str]:
    """MERIDIAN_* settings for the workers: fast sweeps so recovery fits in a test."""
    return {
        "MERIDIAN_ENV": "test",
        "MERIDIAN_DATABASE_URL": database_url,
        "MERIDIAN_REDIS_URL": redis_url,
        "MERIDIAN_TEMPLATES_DIR": str(ROOT / "templates"),
        "MERIDIAN_OUTBOX_DIR": str(workdir / "outbox"),
        "MERIDIAN_SMS_TRANSPORT": "twilio",
        "TWILIO_ACCOUNT_SID": SID,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "MERIDIAN_TWILIO_FROM": "+13125550199",
        "MERIDIAN_TWILIO_API_URL": twilio_url,
        "MERIDIAN_TWILIO_TIMEOUT_S": "2",
        "MERIDIAN_SMS_RATE": str(rate),
        "MERIDIAN_SMS_BURST": str(max(1, int(rate // 10))),
        "MERIDIAN_CLAIM_TIMEOUT_S": "10",
        "MERIDIAN_SWEEP_INTERVAL_S": "2",
        "MERIDIAN_REQUEUE_AFTER_S": "5",
        "MERIDIAN_CLOCK_SHIFT_S": str(int(shift_into_window())),
        "MERIDIAN_CLINIC_NAME": "Chaos Clinic",
        "MERIDIAN_CLINIC_ADDRESS": "1 Test Way, Springfield, IL 62701",
        "MERIDIAN_CLINIC_PHONE": "(312) 555-0123",
    }


def run_chaos(
    plan: ChaosPlan,
    *,
    database_url: str,
    redis_server: RedisServer,
    workdir: Path,
    say: Callable[[str], None] = lambda _: None,
) -> ChaosResult:
    """Send the chaos campaign while breaking things; report what the server got.

    Sets the MERIDIAN_* variables in this process's environment while it runs (the
    Celery app this process sends the first task with reads them), then puts the
    environment back.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    redis.Redis.from_url(redis_server.url).flushall()
    twilio = TwilioServer(SID, TOKEN, log_path=workdir / "accepted.jsonl").start()
    twilio.set_fault_rate(plan.fault_rate, ("429", "500", "lost"), seed=plan.seed)
    env = chaos_env(database_url, redis_server.url, twilio.url, workdir, plan.rate)
    saved = dict(os.environ)
    os.environ.update(env)
    svc = Services(Settings(_env_file=None), dispatcher())  # type: ignore[call-arg]
    workers = Workers(env, workdir)
    try:
        svc.db.upgrade()
        patients = workdir / "patients.csv"
        write_patients(patients, plan.recipients)
        import_patients(patients, svc.patients, region="US", actor="chaos")
        (workdir / "chaos.yaml").write_text(_CAMPAIGN_YAML, encoding="utf-8")
        catalogue.apply_campaign(svc, workdir / "chaos.yaml", actor="chaos", approve=True)
        catalogue.schedule_campaign(svc, CAMPAIGN, actor="chaos")
        for _ in range(plan.workers):
            workers.start(beat=True, concurrency=plan.concurrency)
        return _break_things_until_done(plan, svc, workers, redis_server, twilio, say)
    finally:
        workers.stop()
        twilio.stop()
        svc.close()
        os.environ.clear()
        os.environ.update(saved)


def _break_things_until_done(
    plan: ChaosPlan,
    svc: Services,
    workers: Workers,
    redis_server: RedisServer,
    twilio: TwilioServer,
    say: Callable[[str], None],
) -> ChaosResult:
    rng = random.Random(plan.seed)
    started = time.monotonic()
    run_id = control.run_now(svc, CAMPAIGN, actor="chaos")
    if run_id is None:
        raise RuntimeError("the chaos campaign already had a run")
    # Spread the blows over the time sending would take undisturbed.
    span = plan.recipients / plan.rate
    events = [("kill", span * (k + 1) / (plan.kills + 1)) for k in range(plan.kills)]
    restarts_at = [span * (k + 1.5) / (plan.redis_restarts + 2) for k in range(plan.redis_restarts)]
    events += [("redis", at) for at in restarts_at]
    events.sort(key=lambda e: e[1])
    kills = restarts = 0
    deadline = started + plan.timeout_s
    for kind, at in events:
        # Each blow falls at its planned instant, whatever the run is doing: the
        # timeline is what the test is about, so here the wait is for a time.
        if started + at >= deadline:
            break
        time.sleep(max(0.0, started + at - time.monotonic()))
        elapsed = time.monotonic() - started
        if kind == "kill":
            victim = rng.choice(workers.live())
            workers.kill9(victim)
            workers.start(beat=True, concurrency=plan.concurrency)
            kills += 1
            say(f"{elapsed:6.1f}s  killed worker pid {victim.pid} (-9), started another")
        else:
            redis_server.kill()
            time.sleep(1.0)  # the outage: a second with no Redis at all
            redis_server.restart(lose_data=plan.lose_redis_data)
            restarts += 1
            say(
                f"{elapsed:6.1f}s  killed redis-server (-9) and restarted it"
                + (" empty" if plan.lose_redis_data else " from its AOF")
            )
    # Then the run's end, a condition; the verdict says what a run that never
    # finished got to.
    with contextlib.suppress(TimedOut):
        wait_until(
            lambda: svc.runs.status(run_id) == "finished",
            max(0.0, deadline - time.monotonic()),
            "the chaos run to finish",
        )
    status = svc.runs.status(run_id) or "?"
    seconds = time.monotonic() - started
    result = _verdict(plan, svc, run_id, status, seconds, kills, restarts, twilio)
    result.recovery = _recovery(workers)
    return result


# What the workers' logs say the recovery did, by the phrases they log.
_RECOVERY = {
    "reconciled, provider had it": "provider has it, marked sent",
    "reconciled, resent": "provider never got it, resent",
    "answers lost": "provider's answer lost",
    "stale claims swept": "claims had no outcome after",
    "batches re-queued": "re-queued",
    "beat took the lead": "beat: took the lead",
}


def _recovery(workers: Workers) -> dict[str, int]:
    text = "".join(
        p.read_text(errors="replace") for p in sorted(workers.logdir.glob("worker-*.log"))
    )
    return {name: text.count(phrase) for name, phrase in _RECOVERY.items()}


def _verdict(
    plan: ChaosPlan,
    svc: Services,
    run_id: int,
    status: str,
    seconds: float,
    kills: int,
    restarts: int,
    twilio: TwilioServer,
) -> ChaosResult:
    accepted = twilio.accepted()
    per_patient = Counter(
        int(m.group(1)) for m in (_NAME.search(str(a.get("body", ""))) for a in accepted) if m
    )
    ledger: dict[str, int] = {}
    for _, state, _, n in svc.delivery_queries.counts(run_id):
        ledger[state] = ledger.get(state, 0) + n
    return ChaosResult(
        database=svc.settings.database_url.split(":", 1)[0].split("+", 1)[0],
        recipients=plan.recipients,
        accepted=len(accepted),
        duplicates=sum(n - 1 for n in per_patient.values() if n > 1),
        never_sent=sum(1 for i in range(1, plan.recipients + 1) if per_patient[i] == 0),
        kills=kills,
        redis_restarts=restarts,
        seconds=round(seconds, 1),
        run_status=status,
        ledger=ledger,
        faults=dict(twilio.faults_served),
    )
