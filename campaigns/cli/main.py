"""``meridian``: the operator's command line. Thin: parse, call a service, print.

Exit codes: 0 ok, 1 failure, 2 bad input (the message names file, row, column or
field). Every listing or inspecting command takes ``--json``.
"""

from __future__ import annotations

import functools
import json
import logging.config
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from campaigns.cli import doctor
from campaigns.content import catalogue, sms
from campaigns.domain.states import channel_of
from campaigns.errors import ConfigError, InputError, MeridianError, NotFound
from campaigns.people.patients import import_patients
from campaigns.sending import control, runs
from campaigns.services import Services
from campaigns.settings import load_settings
from tasks.app import dispatcher

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Meridian: seasonal email and SMS campaigns for clinics.",
)
db_app = typer.Typer(no_args_is_help=True, help="The ledger database.")
patients_app = typer.Typer(no_args_is_help=True, help="Patients and their consent.")
campaigns_app = typer.Typer(no_args_is_help=True, help="Campaign definitions and runs.")
runs_app = typer.Typer(no_args_is_help=True, help="Campaign runs.")
sms_app = typer.Typer(no_args_is_help=True, help="SMS encoding.")
app.add_typer(db_app, name="db")
app.add_typer(patients_app, name="patients")
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(runs_app, name="runs")
app.add_typer(sms_app, name="sms")

out = Console()
err = Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ACTOR = "cli"


def _configure_logging() -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
            "handlers": {
                "err": {
                    "class": "logging.StreamHandler",
                    "formatter": "plain",
                    "stream": "ext://sys.stderr",
                }
            },
            "root": {"handlers": ["err"], "level": "WARNING"},
        }
    )


def handled(fn: Callable[P, R]) -> Callable[P, R]:
    """Map Meridian's errors to exit codes and a message on stderr; close the services."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        _configure_logging()
        opened_before = len(_opened)
        try:
            return fn(*args, **kwargs)
        except (InputError, ConfigError, NotFound) as exc:
            err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
            raise typer.Exit(2) from exc
        except MeridianError as exc:
            err.print(f"[red]failed:[/red] {exc}", markup=True, highlight=False)
            raise typer.Exit(1) from exc
        finally:
            _close_services(opened_before)

    return wrapper


_opened: list[Services] = []


def services() -> Services:
    """Services for this command, with the workers' dispatcher plugged in; ``handled``
    closes them (engine, transports) at its end."""
    svc = Services(load_settings(), dispatcher())
    _opened.append(svc)
    return svc


def _close_services(keep: int) -> None:
    """Close the services opened since there were ``keep``: their pooled connections."""
    while len(_opened) > keep:
        _opened.pop().close()


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@db_app.command("upgrade")
@handled
def db_upgrade() -> None:
    """Create or migrate the ledger's tables (Alembic)."""
    svc = services()
    svc.db.upgrade()
    out.print(f"database at revision head ({svc.db.backend})")


@patients_app.command("import")
@handled
def patients_import(
    file: Path,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and count; write nothing.")
    ] = False,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the good rows, list the bad.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Import (or update by external_id) patients from a CSV file. All or nothing."""
    svc = services()
    report = import_patients(
        file,
        svc.patients,
        region=svc.settings.default_region,
        dry_run=dry_run,
        skip_invalid=skip_invalid,
        actor=ACTOR,
    )
    if as_json:
        _print_json(report.to_dict())
    else:
        out.print(report.summary(), highlight=False)


def _consent(external_id: str, channel: str, granted: bool, text: str | None, actor: str) -> int:
    from campaigns.people import consent

    if channel not in ("sms", "email"):
        raise InputError(f"--channel: {channel!r} is not sms or email")
    if not 0 < len(actor.strip()) <= 64:
        raise InputError("--by: give who records it, in 1 to 64 characters")
    svc = services()
    patient = svc.patients.find(external_id)
    if patient is None:
        raise NotFound(f"--patient: no patient with external_id {external_id!r}")
    return consent.record(
        svc,
        [patient.patient_id],
        channel_of(channel),
        granted,
        source="staff",
        actor=actor,
        text=text,
    )


@patients_app.command("grant")
@handled
def patients_grant(
    patient: Annotated[str, typer.Option("--patient", help="The patient's external_id.")],
    channel: Annotated[str, typer.Option("--channel", help="sms or email.")],
    text: Annotated[str, typer.Option("--text", help="The words the patient agreed to.")],
    by: Annotated[str, typer.Option("--by", help="Who records it (for the audit log).")] = ACTOR,
) -> None:
    """Record a patient's consent to a channel, with the words they agreed to."""
    _consent(patient, channel, True, text, by)
    out.print(f"consent to {channel} recorded for {patient}")


@patients_app.command("revoke")
@handled
def patients_revoke(
    patient: Annotated[str, typer.Option("--patient", help="The patient's external_id.")],
    channel: Annotated[str, typer.Option("--channel", help="sms or email.")],
    text: Annotated[str | None, typer.Option("--text", help="How the patient said it.")] = None,
    by: Annotated[str, typer.Option("--by", help="Who records it (for the audit log).")] = ACTOR,
) -> None:
    """Record an opt-out; it stops every later message on that channel at once."""
    _consent(patient, channel, False, text, by)
    out.print(f"opt-out from {channel} recorded for {patient}")


@patients_app.command("consent")
@handled
def patients_consent(
    patient: Annotated[str, typer.Option("--patient", help="The patient's external_id.")],
    as_json: JsonOpt = False,
) -> None:
    """A patient's consent history, oldest first, and where each channel stands."""
    svc = services()
    found = svc.patients.find(patient)
    if found is None:
        raise NotFound(f"--patient: no patient with external_id {patient!r}")
    history = svc.consent.history(found.patient_id)
    data = {
        "patient": patient,
        "current": svc.consent.current(found.patient_id),
        "history": [
            {
                k: (v.isoformat() if hasattr(v, "isoformat") else v)
                for k, v in h.items()
                if k != "patient_id"
            }
            for h in history
        ],
    }
    if as_json:
        _print_json(data)
        return
    table = Table("at", "channel", "granted", "source", "recorded by")
    for h in history:
        table.add_row(
            h["at"].isoformat(),
            h["channel"],
            "yes" if h["granted"] else "no",
            h["source"],
            h["recorded_by"],
        )
    out.print(table)


@campaigns_app.command("apply")
@handled
def campaigns_apply(file: Path, as_json: JsonOpt = False) -> None:
    """Create or update a campaign from YAML; templates are compiled and linted."""
    applied = catalogue.apply_campaign(services(), file, actor=ACTOR)
    if as_json:
        _print_json(
            {
                "id": applied.campaign_id,
                "name": applied.name,
                "findings": applied.findings,
                "unacknowledged": applied.unacknowledged,
            }
        )
        return
    out.print(f"campaign {applied.name} applied (id {applied.campaign_id})")
    for f in applied.findings:
        mark = "acknowledged" if f not in applied.unacknowledged else "needs acknowledgement"
        out.print(
            f"  {f['template']}:{f['line'] or '-'} {f['rule']}: {f['phrase'] or ''} ({mark})",
            highlight=False,
        )


@campaigns_app.command("list")
@handled
def campaigns_list(as_json: JsonOpt = False) -> None:
    """List campaigns."""
    data = [catalogue.campaign_listing(r) for r in services().campaigns.all()]
    if as_json:
        _print_json(data)
        return
    table = Table("id", "name", "status", "channels", "schedule")
    for d in data:
        sched = d["schedule"].get("rrule") or f"once {d['schedule'].get('once')}"
        table.add_row(
            str(d["id"]),
            d["name"],
            d["status"],
            ",".join(d["channels"]),
            f"{sched} at {d['schedule']['send_time']} local",
        )
    out.print(table)


@campaigns_app.command("show")
@handled
def campaigns_show(name: str, as_json: JsonOpt = False) -> None:
    """Show a campaign's definition, lint findings, next sends and runs."""
    data = catalogue.campaign_summary(services(), name).to_dict()
    if as_json:
        _print_json(data)
    else:
        out.print_json(data=data, default=str)


@campaigns_app.command("preview")
@handled
def campaigns_preview(
    name: str,
    patient: Annotated[str, typer.Option("--patient", help="The patient's external_id.")],
    as_json: JsonOpt = False,
) -> None:
    """Render each channel's message for one patient, with SMS segments and lint."""
    from campaigns.content.preview import preview

    data = preview(services(), name, patient)
    if as_json:
        _print_json(data)
        return
    for channel, part in data["channels"].items():
        out.rule(f"{channel}")
        if part.get("subject"):
            out.print(f"Subject: {part['subject']}", highlight=False)
        out.print(part["body"], highlight=False, markup=False)
        if "segments" in part:
            s = part["segments"]
            out.print(
                f"[dim]{s['encoding']}, {s['characters']} characters, "
                f"{s['segments']} segment(s)[/dim]"
            )
    for f in data["findings"]:
        out.print(
            f"[yellow]lint[/yellow] {f['template']}:{f['line'] or '-'} {f['rule']}: "
            f"{f['phrase'] or ''} {f['message']}",
            highlight=False,
        )


def _control(name: str, action: str) -> None:
    svc = services()
    result = getattr(control, action)(svc, name, actor=ACTOR)
    out.print(f"campaign {name}: {action} ({result})")


@campaigns_app.command("schedule")
@handled
def campaigns_schedule(name: str) -> None:
    """Let the campaign's occurrences start (writes its RedBeat entry)."""
    _control(name, "schedule")


@campaigns_app.command("pause")
@handled
def campaigns_pause(name: str) -> None:
    """Stop new sends within a second; scheduled occurrences wait."""
    _control(name, "pause")


@campaigns_app.command("resume")
@handled
def campaigns_resume(name: str) -> None:
    """Continue where the campaign stopped, without re-sending."""
    _control(name, "resume")


@campaigns_app.command("cancel")
@handled
def campaigns_cancel(name: str) -> None:
    """Stop for good: what is left is skipped with reason 'cancelled'."""
    _control(name, "cancel")


@campaigns_app.command("run")
@handled
def campaigns_run(
    name: str,
    now: Annotated[bool, typer.Option("--now", help="Start an occurrence now.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run until it ends.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Start an occurrence of the campaign now (the workers send it)."""
    if not now:
        raise InputError("campaigns run: say --now (scheduled occurrences start by themselves)")
    svc = services()
    run_id = control.run_now(svc, name, actor=ACTOR)
    if run_id is None:
        raise InputError(f"campaign {name}: this occurrence already has a run")
    if wait:
        from campaigns.cli.progress import follow_run

        follow_run(svc, run_id, out, quiet=as_json)
    if as_json:
        _print_json(runs.run_status(svc, run_id) if wait else {"run_id": run_id})
    else:
        out.print(f"run {run_id} started")


@runs_app.command("show")
@handled
def runs_show(run_id: int, as_json: JsonOpt = False) -> None:
    """A run's status and its counts by state and skip reason."""
    status = runs.run_status(services(), run_id)
    if as_json:
        _print_json(status)
        return
    from campaigns.cli.progress import print_summary

    print_summary(out, status)


@sms_app.command("segments")
@handled
def sms_segments(text: str, as_json: JsonOpt = False) -> None:
    """How carriers count TEXT: encoding, characters, segments."""
    info = sms.count_segments(text)
    if as_json:
        _print_json(info.to_dict())
        return
    forced = f"; UCS-2 because of {' '.join(info.ucs2_characters)}" if info.ucs2_characters else ""
    out.print(
        f"{info.encoding}, {info.characters} characters, {info.segments} segment(s){forced}",
        highlight=False,
    )


@app.command("web")
@handled
def web_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the staff console, the JSON API and the public webhooks (development server;
    put a WSGI server such as gunicorn in front of campaigns.web.app in production)."""
    from campaigns.web.app import create_app

    create_app(services()).run(host=host, port=port, threaded=True)


users_app = typer.Typer(no_args_is_help=True, help="Staff users of the console.")
app.add_typer(users_app, name="users")


@users_app.command("add")
@handled
def users_add(
    username: str,
    role: Annotated[str, typer.Option("--role", help="admin, marketer or viewer.")] = "marketer",
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)
    ] = "",
) -> None:
    """Add a staff user; the password is asked for twice and stored as an argon2 hash."""
    from campaigns.people.staff import add_user

    add_user(services(), username, password, role)
    out.print(f"user {username} added as {role}")


@app.command("demo")
@handled
def demo_command() -> None:
    """Send the cold-and-flu campaign to 1,000 synthetic patients through a real worker."""
    from campaigns.cli.demo import run_demo

    run_demo(out)


app.command("doctor")(doctor.doctor)


def main() -> None:  # pragma: no cover - console script shim
    app()
