"""The campaign form, no YAML needed: name, channels, the audience builder with its
live count, the schedule builder in plain English, limits; and clone, archive and
restore.

The form builds the same CampaignDefinition the YAML import does and saves it
through the same path (campaigns.content.catalogue.save_definition). As fields
change, the page asks ``/campaigns/form/check`` for the audience's size, a sample
of who is in and who is left out and why (fan-out's own rules,
campaigns.sending.fanout.preview_audience), and the schedule in words with its
next three occurrences on the clinic's clock. Names in the sample are shown to
signed-in staff only, audited by patient id, and never logged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from campaigns.clock.schedule_words import MONTHS, WEEKDAYS, describe, still_open, upcoming
from campaigns.clock.schedules import Schedule, occurrence_key
from campaigns.content import catalogue
from campaigns.content.definitions import Compliance, ScheduleSpec
from campaigns.domain.models import Recipient
from campaigns.domain.states import FREED_NAME_STATES, CampaignState
from campaigns.errors import InputError
from campaigns.sending import control
from campaigns.sending.fanout import preview_audience
from campaigns.services import Services
from campaigns.web.context import services
from campaigns.web.security import require_role
from campaigns.web.views.console import actor, attempt, bp
from campaigns.web.views.studio_fields import (
    FormRead,
    audience_definition,
    form_values,
    read_form,
    schedule_spec,
)

SKIP_WORDS = {
    "no_consent": "never consented to this channel",
    "opted_out": "said no or opted out",
    "invalid_contact": "no number or address on file",
    "suppressed": "on the suppression list",
    "no_consent_for_number": "consented for another number",
    "no_consent_for_address": "consented for another address",
    "shared_number": "shares a number with another patient who gets it",
}


def _choices(svc: Services) -> dict[str, Any]:
    """What the pickers offer: the tags and states patients actually have, the
    template folders, the calendar."""
    folders = sorted(
        p.name
        for p in svc.renderer.templates_dir.iterdir()
        if p.is_dir() and not p.name.startswith(("_", "."))
    )
    return {
        "tags": svc.patients.tags_in_use(),
        "states": svc.patients.states_in_use(),
        "folders": folders,
        "months": list(enumerate(MONTHS, start=1)),
        "weekdays": list(
            zip(WEEKDAYS, ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), strict=True)
        ),
        "clinic_zone": svc.settings.clinic_timezone,
    }


def _page(
    values: dict[str, Any],
    *,
    campaign: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    template_problems: list[str] | None = None,
) -> str:
    svc = services()
    return render_template(
        "console/studio_form.html",
        v=values,
        errors=errors or {},
        template_problems=template_problems or [],
        campaign=campaign,
        **_choices(svc),
    )


@bp.get("/campaigns/new")
@require_role("marketer")
def campaign_new() -> ResponseReturnValue:
    return _page(form_values(None))


@bp.get("/campaigns/<name>/edit")
@require_role("marketer")
def campaign_edit(name: str) -> ResponseReturnValue:
    row, definition = catalogue.load_campaign(services(), name)
    return _page(form_values(definition), campaign=row)


@bp.post("/campaigns/form")
@require_role("marketer")
def campaign_form_save() -> ResponseReturnValue:
    svc = services()
    read = read_form(request.form)
    editing = request.form.get("editing", "").strip()
    campaign = svc.campaigns.get(editing) if editing else None
    if (
        read.definition is not None
        and not editing
        and svc.campaigns.name_taken(read.definition.name)
    ):
        read.errors["name"] = (
            f"A campaign named {read.definition.name!r} exists: choose another name, "
            "or open that campaign to edit it"
        )
        read.definition = None
    if read.definition is not None and editing and read.definition.name != editing:
        read.errors["name"] = f"A campaign keeps its name ({editing}); to use another, clone it"
        read.definition = None
    if campaign is not None and campaign["status"] in FREED_NAME_STATES:
        # Its name is free: a save would make a new campaign of it, not change this one.
        read.errors["form"] = (
            f"Campaign {campaign['name']} is {campaign['status']}: restore it first, "
            "or clone it to use its settings"
            if campaign["status"] == CampaignState.ARCHIVED
            else f"Campaign {campaign['name']} is cancelled: clone it to use its settings"
        )
        read.definition = None
    if read.definition is None:
        return _page(read.values, campaign=campaign, errors=read.errors), 422
    # The form does not edit acknowledgements (an admin gives them on the review page):
    # the ledger's stand, whatever the page carried (stale, or typed in).
    held = catalogue.load_campaign(svc, int(campaign["id"]))[1] if campaign else None
    read.definition = read.definition.model_copy(
        update={"compliance": held.compliance if held else Compliance()}
    )
    try:
        applied = catalogue.save_definition(svc, read.definition, actor=actor(), source="the form")
    except InputError as exc:
        read.errors["form"] = (
            "The message templates have problems a patient would see; fix them, "
            "or choose other templates:"
        )
        problems = _plain_problems(exc)
        return _page(
            read.values, campaign=campaign, errors=read.errors, template_problems=problems
        ), 422
    flash(f"Saved campaign {applied.name}.", "ok")
    for finding in applied.unacknowledged:
        flash(
            f"Needs an acknowledgement before it can be scheduled: {finding['phrase']!r} "
            f"in {finding['template']}:{finding['line']} ({finding['message']})",
            "warning",
        )
    return redirect(url_for("console.campaign", name=applied.name))


def _plain_problems(exc: InputError) -> list[str]:
    """The lint's reasons in words, each once: the marketer needs what to fix, not
    the rule's id nor every template line that repeats it."""
    reasons = [p.reason.split(": ", 1)[-1] for p in exc.problems] or [exc.message]
    return list(dict.fromkeys(reasons))


@bp.post("/campaigns/form/check")
@require_role("marketer")
def campaign_form_check() -> ResponseReturnValue:
    """The live part of the form, as JSON: errors by field, the schedule in words and
    its next occurrences, the audience's count and sample."""
    svc = services()
    read = read_form(request.form)
    return jsonify(
        errors=read.errors,
        schedule=_schedule_answer(svc, read),
        audience=_audience_answer(svc, read),
    )


def _schedule_answer(svc: Services, read: FormRead) -> dict[str, Any] | None:
    spec = schedule_spec(read)
    if spec is None or any(
        k in read.errors for k in ("schedule_kind", "once", "month", "day", "weekdays", "rrule")
    ):
        return None
    try:
        schedule = spec.to_schedule(svc.settings.clinic_timezone)
    except InputError:
        return None
    now = svc.now()
    return {
        "text": describe(spec.rrule, spec.once, spec.send_time),
        "open": _open_occurrence(svc, read, schedule, now),
        "next": upcoming(schedule, now, 3),
        "zone": schedule.timezone,
    }


def _open_occurrence(
    svc: Services, read: FormRead, schedule: Schedule, now: datetime
) -> str | None:
    """The sentence for an occurrence open now that this campaign has not run yet."""
    found = still_open(schedule, now)
    if found is None:
        return None
    day, words = found
    name = str(read.values.get("name") or "")
    row = svc.campaigns.get(name) if name else None
    last = None if row is None else svc.runs.last_occurrence(int(row["id"]))
    return None if last is not None and last >= occurrence_key(day) else words


def _audience_answer(svc: Services, read: FormRead) -> dict[str, Any] | None:
    definition = audience_definition(read)
    if definition is None:
        return None
    found = preview_audience(svc, definition, sample=5)
    shown = [r.patient_id for r, _ in found.sample_in] + [r.patient_id for r, _ in found.sample_out]
    if shown:
        svc.reports.record_access(actor(), "patient.audience_sample", None, ids=shown)
    return {
        "selected": found.selected,
        "reached": found.reached,
        "looked_at": found.looked_at,
        "excluded": [
            {
                "reason": reason,
                "words": SKIP_WORDS.get(reason, reason.replace("_", " ")),
                "patients": n,
            }
            for reason, n in sorted(found.excluded.items(), key=lambda item: -item[1])
        ],
        "sample_in": [{"who": _who(r), "channels": channels} for r, channels in found.sample_in],
        "sample_out": [
            {
                "who": _who(r),
                "why": "; ".join(
                    f"{ch}: {SKIP_WORDS.get(reason, reason)}" for ch, reason in reasons
                ),
            }
            for r, reasons in found.sample_out
        ],
    }


def _who(recipient: Recipient) -> str:
    name = " ".join(p for p in (recipient.first_name, recipient.last_name) if p)
    return f"{name} ({recipient.external_id})" if name else recipient.external_id


# clone, archive, restore ---------------------------------------------------------------


def _page_of(svc: Services, campaign_id: int) -> ResponseReturnValue:
    """Back to the campaign's page: by name while it holds it, else by id."""
    row = svc.campaigns.get(campaign_id)
    if row is None or row["status"] in FREED_NAME_STATES:
        return redirect(url_for("console.campaign_by_id", campaign_id=campaign_id))
    return redirect(url_for("console.campaign", name=row["name"]))


# By id: a cancelled or archived campaign may share its name with a newer one.
@bp.post("/campaigns/id/<int:campaign_id>/clone")
@require_role("marketer")
def campaign_clone(campaign_id: int) -> ResponseReturnValue:
    svc, who = services(), actor()
    new_name = request.form.get("new_name", "").strip()
    done, applied = attempt("Clone", lambda: control.clone(svc, campaign_id, new_name, actor=who))
    if not done or applied is None:
        return _page_of(svc, campaign_id)
    name = applied.name
    flash(f"Cloned as {name}, a draft: check it and save.", "ok")
    return redirect(url_for("console.campaign_edit", name=name))


@bp.post("/campaigns/id/<int:campaign_id>/archive")
@require_role("marketer")
def campaign_archive(campaign_id: int) -> ResponseReturnValue:
    svc, who = services(), actor()
    done, said = attempt("Archive", lambda: control.archive(svc, campaign_id, actor=who))
    if done:
        flash(f"{said}.", "ok")
        return redirect(url_for("console.campaigns"))
    return _page_of(svc, campaign_id)


@bp.post("/campaigns/id/<int:campaign_id>/restore")
@require_role("marketer")
def campaign_restore(campaign_id: int) -> ResponseReturnValue:
    svc, who = services(), actor()
    done, said = attempt("Restore", lambda: control.restore(svc, campaign_id, actor=who))
    if done:
        flash(f"{said}.", "ok")
        return _page_of(svc, campaign_id)
    return redirect(url_for("console.campaigns", show="archived"))


@bp.app_template_filter("schedule_words")
def _schedule_words(schedule: dict[str, Any]) -> str:
    """A stored definition's schedule in plain English, for lists and pages."""
    try:
        spec = ScheduleSpec.model_validate(schedule)
    except ValueError:
        return f"{schedule.get('rrule') or schedule.get('once')} at {schedule.get('send_time')}"
    return describe(spec.rrule, spec.once, spec.send_time)
