"""The README's benchmark commands, run as an engineer types them, on a few hundred
patients: each starts its own services, finishes, and prints what it says it prints.

A bench is not run by anything else in the suite, so a change elsewhere could break
one unnoticed (``bench/nodes.py`` did: its campaigns were refused once campaigns
needed approving). Only exit codes and the figures' presence and consistency are
asserted; no time or rate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

PATIENTS = "300"


def run_bench(*args: str) -> str:
    """``python bench/...`` from the project's root; its standard output."""
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stderr}"
    return done.stdout


def git_head() -> str:
    """The checkout's commit, as the benches record it."""
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def last_json(out: str) -> dict[str, Any]:
    line = out.strip().splitlines()[-1]
    found: dict[str, Any] = json.loads(line)
    return found


def test_make_bench_on_both_databases_sends_the_campaign_and_reports_each() -> None:
    out = run_bench(
        "bench/throughput.py",
        "--patients",
        PATIENTS,
        "--naive-messages",
        "30",
        "--ceiling-messages",
        "100",
        "--pace-seconds",
        "2",
    )
    sqlite = last_json(out)
    for figures in (sqlite, sqlite["postgresql"]):
        assert figures["messages_sent"] > 0
        assert figures["sent_sms"] + figures["sent_email"] == figures["messages_sent"]
        assert figures["deliveries"] == (
            figures["messages_sent"] + figures["skipped"] + figures["not_sent_other"]
        )
        assert figures["naive_messages"] == 30
        # the naive design's CPU by process adds up to its CPU per 1,000 messages
        by_role = figures["naive_cpu_s_by_role"]
        assert {"naive worker", "redis", "producer"} <= set(by_role)
        assert sum(by_role.values()) / 30 * 1000 == pytest.approx(
            figures["naive_cpu_s_per_1000_msgs"], rel=0.01, abs=0.1
        )
        assert set(figures["targets_met"]) >= {"throughput_vs_ceiling", "speedup_vs_naive"}
    assert sqlite["database"] == "sqlite"
    assert sqlite["postgresql"]["database"] == "postgresql"
    # Both databases ran the same campaign on the same patients.
    assert sqlite["messages_sent"] == sqlite["postgresql"]["messages_sent"]


def test_bench_nodes_runs_separate_nodes_and_the_rate_phase() -> None:
    out = run_bench(
        "bench/nodes.py",
        "--patients",
        PATIENTS,
        "--nodes",
        "1,2",
        "--rate",
        "20",
        "--rate-seconds",
        "2",
    )
    figures = last_json(out)
    assert set(figures["nodes"]) == {"1", "2"}
    # Traceable to its code and its limiter's spacing.
    assert figures["machine"]["git"].startswith(git_head())
    assert figures["rate_jitter_ms"] == 30.0
    for phases in figures["nodes"].values():
        assert phases["throughput"]["messages_sent"] > 0
        assert phases["rate_limit"]["limiter"]["messages"] > 0


def test_bench_stages_times_each_stage_of_the_send_path() -> None:
    figures = last_json(
        run_bench("bench/stages.py", "--patients", PATIENTS, "--database", "sqlite")
    )
    assert figures["database"] == "sqlite"
    assert figures["sending_us_per_msg"] > 0
    assert figures["render_us_per_msg"] > 0


def test_bench_import_time_imports_into_both_databases() -> None:
    out = run_bench("bench/import_time.py", "--patients", PATIENTS)
    assert out.count(f"{PATIENTS} inserted") == 2, out


def test_bench_explain_shows_the_hot_queries_plans() -> None:
    out = run_bench("bench/explain.py", "--patients", PATIENTS)
    assert "Execution Time" in out


def test_bench_ratelimit_sends_through_the_twilio_client() -> None:
    figures = last_json(
        run_bench("bench/ratelimit.py", "--seconds", "2", "--workers", "2", "--rate", "20")
    )
    assert figures["mode"] == "twilio"
    assert figures["sent"] > 0
    assert figures["send_errors"] == 0
