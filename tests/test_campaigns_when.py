"""``meridian campaigns when``: every case of the lawful-time table from the command line."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from campaigns.cli.main import app
from tests.conftest import CLINIC, ROOT
from tests.lawful_cases import CASES, SKIP, Case

runner = CliRunner()
SHIPPED = ROOT / "examples/campaigns/cold-and-flu-season.yaml"
FIELDS = [
    "external_id", "first_name", "last_name", "email", "phone", "timezone", "state", "tags",
    "last_visit", "next_appointment", "sms_consent", "sms_consent_at", "sms_consent_source",
    "email_consent", "email_consent_at", "email_consent_source", "preferred_channel",
]  # fmt: skip


def patient_id(case: Case) -> str:
    return f"W{CASES.index(case):03d}"


def campaign_name(case: Case) -> str:
    hhmm = case.send_time.replace(":", "")
    return f"when-{case.channel}-{hhmm}-{case.grace_hours:g}h"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MERIDIAN_DATABASE_URL", database_url)
    monkeypatch.setenv("MERIDIAN_TEMPLATES_DIR", str(ROOT / "templates"))
    for key, value in CLINIC.items():
        monkeypatch.setenv(f"MERIDIAN_{key.upper()}", value)
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    patients = tmp_path / "patients.csv"
    with patients.open("w", newline="", encoding="utf-8") as f:
        out = csv.DictWriter(f, FIELDS)
        out.writeheader()
        for case in CASES:
            out.writerow(
                {
                    "external_id": patient_id(case),
                    "first_name": "Ana",
                    "email": f"{patient_id(case).lower()}@example.org",
                    "phone": case.phone or "",
                    "timezone": case.timezone or "",
                    "state": case.state or "",
                    "tags": "active",
                    "sms_consent": "yes" if case.phone else "",
                    "sms_consent_at": "2026-01-05T10:00:00-05:00" if case.phone else "",
                    "sms_consent_source": "intake-form" if case.phone else "",
                    "email_consent": "yes",
                    "email_consent_at": "2026-01-05T10:00:00-05:00",
                    "email_consent_source": "intake-form",
                }
            )
    imported = runner.invoke(app, ["patients", "import", str(patients)])
    assert imported.exit_code == 0, imported.output
    shipped = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    for name in sorted({campaign_name(c) for c in CASES}):
        case = next(c for c in CASES if campaign_name(c) == name)
        definition = {
            **shipped,
            "name": name,
            "channels": [case.channel],
            "schedule": {
                "once": "2027-10-13",
                "send_time": case.send_time,
                "grace_hours": case.grace_hours,
            },
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(definition), encoding="utf-8")
        applied = runner.invoke(app, ["campaigns", "apply", str(path)])
        assert applied.exit_code == 0, applied.output
    return tmp_path


def ask(case: Case, *extra: str) -> dict[str, object]:
    args = ["campaigns", "when", campaign_name(case), "--patient", patient_id(case)]
    args += ["--occurrence", case.occurrence, "--json", *extra]
    zones = {"MERIDIAN_CLINIC_SERVICE_ZONES": ",".join(case.service_zones or ())}
    result = runner.invoke(app, args, env=zones if case.service_zones else None)
    assert result.exit_code == 0, result.output
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


def test_campaigns_when_answers_every_case_of_the_table(env: Path) -> None:
    wrong = []
    for case in CASES:
        part = ask(case)["channels"][case.channel]  # type: ignore[index]
        at = part["at"]
        expected = None if case.expect == SKIP else datetime.fromisoformat(case.expect)
        got = None if at is None else datetime.fromisoformat(at)
        if got != expected:
            wrong.append((case.id, case.source, at, part["decided_by"]))
        if expected is None:
            assert part["skip_reason"] == "no_lawful_time", case.id
        assert part["candidates"] and part["evidence"] and part["source"], case.id
    assert wrong == []


def test_the_answer_names_utc_the_patients_time_the_candidates_and_the_deciding_rule(
    env: Path,
) -> None:
    case = next(c for c in CASES if c.id == "ca-with-212-five-am")
    args = ["campaigns", "when", campaign_name(case), "--patient", patient_id(case)]
    shown = runner.invoke(app, [*args, "--occurrence", case.occurrence])
    assert shown.exit_code == 0, shown.output
    text = shown.output
    assert "sends at 2027-10-13 15:00:00 UTC" in text
    assert "Wed 2027-10-13 08:00 PDT  America/Los_Angeles  CA" in text
    assert "Wed 2027-10-13 11:00 EDT  America/New_York  NY" in text
    assert "decided by: held: federal: the window opens at 08:00 in America/Los_Angeles" in text
    assert "address state CA and area code 212 (NY) disagree" in text
    assert "+1212" not in text  # the area code, never the number


def test_a_skipped_case_says_so_and_why(env: Path) -> None:
    case = next(c for c in CASES if c.id == "ri-sunday-skipped")
    args = ["campaigns", "when", campaign_name(case), "--patient", patient_id(case)]
    shown = runner.invoke(app, [*args, "--occurrence", case.occurrence])
    assert shown.exit_code == 0, shown.output
    assert "skipped: no_lawful_time" in shown.output
    assert "RI: no marketing texts on Sunday" in shown.output
    assert "R.I. Gen. Laws 5-61-2" in shown.output


def test_bad_input_exits_2_naming_what_is_wrong(env: Path) -> None:
    case = CASES[0]
    args = ["campaigns", "when", campaign_name(case)]
    bad_date = runner.invoke(app, [*args, "--patient", patient_id(case), "--occurrence", "13/10"])
    assert bad_date.exit_code == 2 and "--occurrence" in bad_date.output
    nobody = runner.invoke(app, [*args, "--patient", "NOBODY", "--occurrence", "2027-10-13"])
    assert nobody.exit_code == 2 and "NOBODY" in nobody.output


def test_without_an_occurrence_it_answers_for_the_schedules_next(env: Path) -> None:
    case = CASES[0]
    args = ["campaigns", "when", campaign_name(case), "--patient", patient_id(case), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["occurrence"] == "2027-10-13"


def test_the_installed_command_answers_too(env: Path) -> None:
    case = next(c for c in CASES if c.id == "907-anchorage-or-adak-ten")
    args = ["campaigns", "when", campaign_name(case), "--patient", patient_id(case)]
    args += ["--occurrence", case.occurrence, "--json"]
    script = Path(sys.executable).with_name("meridian")
    done = subprocess.run(
        [str(script), *args], capture_output=True, text=True, env=os.environ.copy(), check=False
    )
    assert done.returncode == 0, done.stderr
    part = json.loads(done.stdout)["channels"]["sms"]
    assert part["at"] == "2027-10-13T19:00:00+00:00"
    assert [c["zone"] for c in part["candidates"]] == ["America/Adak", "America/Anchorage"]
