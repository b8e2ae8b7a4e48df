"""``meridian campaigns``: apply, list, show and preview definitions; run now,
schedule, pause, resume and cancel them (campaigns.sending.control)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from campaigns.cli.startup import ACTOR, JsonOpt, handled, out, print_json, services
from campaigns.content import catalogue
from campaigns.errors import InputError
from campaigns.sending import control, runs

app = typer.Typer(no_args_is_help=True, help="Campaign definitions and runs.")


@app.command("apply")
@handled
def campaigns_apply(file: Path, as_json: JsonOpt = False) -> None:
    """Create or update a campaign from YAML; templates are compiled and linted."""
    applied = catalogue.apply_campaign(services(), file, actor=ACTOR)
    if as_json:
        print_json(
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


@app.command("list")
@handled
def campaigns_list(as_json: JsonOpt = False) -> None:
    """List campaigns."""
    data = [catalogue.campaign_listing(r) for r in services().campaigns.all()]
    if as_json:
        print_json(data)
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


@app.command("show")
@handled
def campaigns_show(name: str, as_json: JsonOpt = False) -> None:
    """Show a campaign's definition, lint findings, next sends and runs."""
    data = catalogue.campaign_summary(services(), name).to_dict()
    if as_json:
        print_json(data)
    else:
        out.print_json(data=data, default=str)


@app.command("preview")
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
        print_json(data)
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


@app.command("schedule")
@handled
def campaigns_schedule(name: str) -> None:
    """Let the campaign's occurrences start (writes its RedBeat entry)."""
    _control(name, "schedule")


@app.command("pause")
@handled
def campaigns_pause(name: str) -> None:
    """Stop new sends within a second; scheduled occurrences wait."""
    _control(name, "pause")


@app.command("resume")
@handled
def campaigns_resume(name: str) -> None:
    """Continue where the campaign stopped, without re-sending."""
    _control(name, "resume")


@app.command("cancel")
@handled
def campaigns_cancel(name: str) -> None:
    """Stop for good: what is left is skipped with reason 'cancelled'."""
    _control(name, "cancel")


@app.command("run")
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
        print_json(runs.run_status(svc, run_id) if wait else {"run_id": run_id})
    else:
        out.print(f"run {run_id} started")
