"""The CLI end to end on a SQLite file or PostgreSQL: exit codes, messages, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from campaigns.cli import startup
from campaigns.cli.main import app
from tasks.app import app as workers_app
from tasks.app import create_app as celery_app
from tasks.dispatcher import CeleryDispatcher
from tests.conftest import CLINIC, ROOT, make_settings

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MERIDIAN_DATABASE_URL", database_url)
    monkeypatch.setenv("MERIDIAN_TEMPLATES_DIR", str(ROOT / "templates"))
    for key, value in CLINIC.items():
        monkeypatch.setenv(f"MERIDIAN_{key.upper()}", value)
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    return tmp_path


def test_a_file_with_bad_rows_exits_2_and_imports_nothing(env: Path) -> None:
    result = runner.invoke(
        app, ["patients", "import", str(ROOT / "examples/patients-with-errors.csv")]
    )
    assert result.exit_code == 2
    assert "row " in result.output and "column phone" in result.output
    ok = runner.invoke(
        app,
        [
            "patients",
            "import",
            "--json",
            str(ROOT / "examples/patients-with-errors.csv"),
            "--skip-invalid",
        ],
    )
    assert ok.exit_code == 0
    report = json.loads(ok.stdout)
    assert report["skipped"] and report["inserted"] == report["valid"]


def test_staff_revoke_and_grant_consent_and_it_lands_in_the_history(env: Path) -> None:
    assert (
        runner.invoke(app, ["patients", "import", str(ROOT / "examples/patients.csv")]).exit_code
        == 0
    )
    revoked = runner.invoke(
        app,
        [
            "patients",
            "revoke",
            "--patient",
            "P000001",
            "--channel",
            "sms",
            "--text",
            "asked at the front desk",
            "--by",
            "maria",
        ],
    )
    assert revoked.exit_code == 0, revoked.output
    shown = json.loads(
        runner.invoke(app, ["patients", "consent", "--patient", "P000001", "--json"]).stdout
    )
    assert shown["current"]["sms"] is False
    assert shown["history"][-1]["source"] == "staff"
    assert shown["history"][-1]["recorded_by"] == "maria"
    bad = runner.invoke(app, ["patients", "revoke", "--patient", "P000001", "--channel", "fax"])
    assert bad.exit_code == 2 and "--channel" in bad.output
    long_by = ["--channel", "sms", "--by", "x" * 65]
    bad = runner.invoke(app, ["patients", "revoke", "--patient", "P000001", *long_by])
    assert bad.exit_code == 2 and "--by" in bad.output


def test_apply_preview_and_segments(env: Path) -> None:
    runner.invoke(app, ["patients", "import", str(ROOT / "examples/patients.csv")])
    applied = runner.invoke(
        app,
        ["campaigns", "apply", "--json", str(ROOT / "examples/campaigns/cold-and-flu-season.yaml")],
    )
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout)["unacknowledged"] == []
    preview = json.loads(
        runner.invoke(
            app, ["campaigns", "preview", "cold-and-flu-season", "--patient", "P000002", "--json"]
        ).stdout
    )
    sms = preview["channels"]["sms"]
    assert "Reply STOP to opt out" in sms["body"] and sms["segments"]["segments"] == 1
    assert "/unsubscribe/" in preview["channels"]["email"]["html"]
    seg = json.loads(runner.invoke(app, ["sms", "segments", "--json", "Price: 5€ {ok}"]).stdout)
    assert seg["encoding"] == "GSM-7" and seg["characters"] == 17


def test_an_unknown_campaign_exits_2_naming_it(env: Path) -> None:
    result = runner.invoke(app, ["campaigns", "show", "nope"])
    assert result.exit_code == 2 and "nope" in result.output


def test_users_add_stores_a_hash_and_refuses_a_bad_role(env: Path) -> None:
    ok = runner.invoke(
        app,
        ["users", "add", "maria", "--role", "marketer"],
        input="correct horse battery\ncorrect horse battery\n",
    )
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(
        app,
        ["users", "add", "sam", "--role", "owner"],
        input="correct horse battery\ncorrect horse battery\n",
    )
    assert bad.exit_code == 2


def test_run_now_refuses_a_campaign_with_an_unacknowledged_health_claim(
    env: Path, tmp_path: Path
) -> None:
    text = (ROOT / "examples/campaigns/cold-and-flu-season.yaml").read_text(encoding="utf-8")
    head, _, _ = text.partition("compliance:")
    path = tmp_path / "unreviewed.yaml"
    path.write_text(head.replace("name: cold-and-flu-season", "name: unreviewed"), "utf-8")
    applied = runner.invoke(app, ["campaigns", "apply", "--json", str(path)])
    assert applied.exit_code == 0, applied.output
    assert [f["phrase"] for f in json.loads(applied.stdout)["unacknowledged"]] == ["flu"] * 3
    for command in (
        ["campaigns", "run", "unreviewed", "--now"],
        ["campaigns", "schedule", "unreviewed"],
    ):
        refused = runner.invoke(app, command)
        assert refused.exit_code == 2, refused.output
        assert "acknowledgement" in refused.output and "'flu'" in refused.output


def test_a_broker_that_does_not_answer_exits_1_with_a_sentence_not_a_traceback(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nobody = celery_app(make_settings(tmp_path, redis_url="redis://127.0.0.1:1/0"))
    monkeypatch.setattr(startup, "installed_dispatcher", lambda: CeleryDispatcher(nobody))
    try:
        applied = runner.invoke(
            app,
            [
                "campaigns",
                "apply",
                "--approve",
                str(ROOT / "examples/campaigns/cold-and-flu-season.yaml"),
            ],
        )
        assert applied.exit_code == 0, applied.output
        for command in (
            ["campaigns", "schedule", "cold-and-flu-season"],
            ["campaigns", "run", "cold-and-flu-season", "--now"],
        ):
            failed = runner.invoke(app, command)
            said = " ".join(failed.output.split())  # as rich wrapped it for the terminal
            assert failed.exit_code == 1, failed.output
            assert said.startswith("failed: could not")
            assert "Redis (the broker) did not answer" in said
            assert "Traceback" not in failed.output
    finally:
        workers_app.set_current()  # the new Celery app made itself the current one


def test_users_list_disable_enable_role_and_passwd_are_audited(env: Path) -> None:
    password = "correct horse battery\ncorrect horse battery\n"
    assert runner.invoke(app, ["users", "add", "maria"], input=password).exit_code == 0
    listed = runner.invoke(app, ["users", "list"])
    assert listed.exit_code == 0 and "maria" in listed.output and "marketer" in listed.output
    for args, says in (
        (["users", "disable", "maria"], "staff user maria is disabled and signed out everywhere"),
        (["users", "enable", "maria"], "staff user maria is enabled"),
        (["users", "role", "maria", "admin"], "staff user maria now has role admin"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and says in " ".join(result.output.split()), result.output
    changed = runner.invoke(app, ["users", "passwd", "maria"], input=password)
    assert changed.exit_code == 0 and "new password" in changed.output
    shown = json.loads(runner.invoke(app, ["users", "list", "--json"]).stdout)
    assert shown[0]["role"] == "admin" and shown[0]["active"] is True
    assert "password_hash" not in shown[0]
    missing = runner.invoke(app, ["users", "disable", "nobody", "--json"])
    assert missing.exit_code == 2 and "nobody" in json.loads(missing.stdout)["error"]
    bad = runner.invoke(app, ["users", "role", "maria", "owner"])
    assert bad.exit_code == 2 and "owner" in bad.output


def test_commands_answer_in_sentences_and_say_when_nothing_was_done(env: Path) -> None:
    runner.invoke(app, ["patients", "import", str(ROOT / "examples/patients.csv")])
    runner.invoke(
        app, ["campaigns", "apply", str(ROOT / "examples/campaigns/cold-and-flu-season.yaml")]
    )
    paused = runner.invoke(app, ["campaigns", "pause", "cold-and-flu-season"])
    assert paused.exit_code == 0
    assert "is draft: nothing was paused" in " ".join(paused.output.split())
    shown = runner.invoke(app, ["campaigns", "show", "cold-and-flu-season"])
    assert shown.exit_code == 0 and not shown.output.lstrip().startswith("{")
    assert "campaign cold-and-flu-season (id 1) is draft" in shown.output
    assert "approval   not submitted for approval yet" in shown.output
    assert "next sends" in shown.output
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("meridian ")


def test_a_command_before_db_upgrade_says_to_run_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MERIDIAN_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    for args in (["campaigns", "list"], ["patients", "import", "x.csv"], ["users", "list"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2
        assert "run `meridian db upgrade` first" in " ".join(result.output.split())
        assert "Traceback" not in result.output
    as_json = runner.invoke(app, ["campaigns", "list", "--json"])
    assert "db upgrade" in json.loads(as_json.stdout)["error"]
