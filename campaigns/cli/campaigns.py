"""``meridian campaigns``: apply, list, show and preview definitions; run now,
schedule, pause, resume and cancel them (campaigns.sending.control)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from campaigns.cli.startup import ACTOR, JsonOpt, handled, out, print_json, services
from campaigns.content import catalogue
from campaigns.content.approval import review_status
from campaigns.errors import InputError
from campaigns.sending import control, runs

app = typer.Typer(no_args_is_help=True, help="Campaign definitions and runs.")


@app.command("apply")
@handled
def campaigns_apply(
    file: Path,
    approve: Annotated[
        bool,
        typer.Option(
            "--approve",
            help="Approve it as the operator applying a reviewed file (audited as such); "
            "only a lint-clean campaign is approved.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create or update a campaign from YAML; templates are compiled and linted."""
    applied = catalogue.apply_campaign(services(), file, actor=ACTOR, approve=approve)
    if as_json:
        print_json(
            {
                "id": applied.campaign_id,
                "name": applied.name,
                "findings": applied.findings,
                "unacknowledged": applied.unacknowledged,
                "approved": applied.approved,
                "lapsed": applied.lapsed,
            }
        )
        return
    out.print(f"campaign {applied.name} applied (id {applied.campaign_id})")
    if applied.approved:
        out.print("  approved by the operator (apply --approve)", highlight=False)
    elif approve:
        out.print("  not approved: a health claim needs an acknowledgement first", highlight=False)
    elif applied.lapsed:
        out.print(
            "  changed since approval: back to draft; approve it again before it runs",
            highlight=False,
        )
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
    svc = services()
    summary = catalogue.campaign_summary(svc, name, audience=True)
    data = summary.to_dict()
    if as_json:
        print_json(data)
        return
    d = summary.definition
    sched = data["schedule"].get("rrule") or f"once on {data['schedule'].get('once')}"
    lines = [
        f"campaign {data['name']} (id {data['id']}) is {data['status']}",
        f"  channels   {', '.join(data['channels'])}",
        f"  templates  {d.templates}",
        f"  schedule   {sched}, at {data['schedule']['send_time']} in each patient's zone",
        f"  audience   {summary.audience} patient(s) today",
        f"  approval   {review_status(svc, int(data['id']), d).sentence}",
        "  next sends "
        + (", ".join(_when(t) for t in summary.next_sends) or "none (no occurrence left)"),
    ]
    out.print("\n".join(lines), highlight=False, markup=False)
    findings = data["findings"] or []
    if findings:
        out.print(f"  findings   {len(findings)} (see `campaigns apply` or the console)")
    if summary.runs:
        table = Table("run", "occurrence", "status")
        for r in summary.runs:
            table.add_row(str(r["id"]), str(r["occurrence"]), str(r["status"]))
        out.print(table)
    else:
        out.print("  no runs yet", highlight=False)


def _when(instant: datetime) -> str:
    return instant.strftime("%a %Y-%m-%d %H:%M %Z")


@app.command("preview")
@handled
def campaigns_preview(
    name: str,
    patient: Annotated[str, typer.Option("--patient", help="The patient's external_id.")],
    as_json: JsonOpt = False,
) -> None:
    """Render each channel's message for one patient, with SMS segments and lint."""
    from campaigns.content.preview import preview

    data = preview(services(), name, patient, actor=ACTOR)
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


def _control(name: str, action: str, as_json: bool) -> None:
    said = getattr(control, action)(services(), name, actor=ACTOR)
    if action == "cancel":
        said = f"campaign {name} is cancelled: {said}"
    if as_json:
        print_json({"campaign": name, "action": action, "done": said})
    else:
        out.print(said, highlight=False)


@app.command("schedule")
@handled
def campaigns_schedule(name: str, as_json: JsonOpt = False) -> None:
    """Let the campaign's occurrences start (writes its RedBeat entry)."""
    svc = services()
    row = control.schedule(svc, name, actor=ACTOR)
    summary = catalogue.campaign_summary(svc, name)
    first = summary.next_sends[0] if summary.next_sends else None
    if as_json:
        shown = first.isoformat() if first else None
        print_json({"campaign": name, "status": row["status"], "next_send": shown})
        return
    when = (
        f"; its next occurrence is {_when(first)} (each patient at the send time in their own zone)"
        if first
        else "; it has no occurrence left"
    )
    out.print(f"campaign {name} is scheduled{when}", highlight=False)


@app.command("pause")
@handled
def campaigns_pause(name: str, as_json: JsonOpt = False) -> None:
    """Stop new sends within a second; scheduled occurrences wait."""
    _control(name, "pause", as_json)


@app.command("resume")
@handled
def campaigns_resume(name: str, as_json: JsonOpt = False) -> None:
    """Continue where the campaign stopped, without re-sending."""
    _control(name, "resume", as_json)


@app.command("cancel")
@handled
def campaigns_cancel(name: str, as_json: JsonOpt = False) -> None:
    """Stop for good: what is left is skipped with reason 'cancelled'."""
    _control(name, "cancel", as_json)


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
