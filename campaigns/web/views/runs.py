"""A run's page: live counts and what the run waits for (polled by htmx until the run
is final), the timeline of due times, skip reasons, failures and a chart of messages
over time (campaigns.sending.results); pause, resume, cancel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from campaigns.domain.states import FINAL_RUN_STATES
from campaigns.sending import results, runs
from campaigns.services import Services
from campaigns.web.context import services
from campaigns.web.security import require_role
from campaigns.web.views.console import actor, attempt, bp


@bp.get("/runs/<int:run_id>")
@require_role("viewer")
def run(run_id: int) -> ResponseReturnValue:
    svc = services()
    status = runs.run_status(svc, run_id)
    return render_template(
        "console/run.html",
        status=status,
        copy=_copy_sent(svc, run_id),
        final=FINAL_RUN_STATES,
        results=results.run_results(svc, run_id),
        timeline=results.timeline(svc, run_id),
        engagement=_engagement(svc, run_id),
    )


def _engagement(svc: Services, run_id: int) -> dict[str, Any]:
    """Clicks and bookings: the run's, and per channel."""
    empty = {"clicked": 0, "clicks": 0, "booked": 0}
    by_channel = svc.engagement.engagement([run_id], group_by="channel")
    return {
        "total": svc.engagement.engagement([run_id]).get(run_id, empty),
        "channels": {ch: by_channel.get((run_id, ch), empty) for ch in ("email", "sms")},
        "window": svc.settings.booking_window_days,
    }


def _copy_sent(svc: Services, run_id: int) -> dict[str, Any] | None:
    """The version of copy the run sends, fixed when it started; None when it sends
    its campaign's templates folder."""
    run_row = svc.runs.get(run_id)
    version_id = None if run_row is None else run_row.get("template_version_id")
    return None if version_id is None else svc.copies.get(int(version_id))


@bp.get("/runs/<int:run_id>/progress")
@require_role("viewer")
def run_progress(run_id: int) -> ResponseReturnValue:
    svc = services()
    status = runs.run_status(svc, run_id)
    return render_template(
        "console/_run_progress.html",
        status=status,
        final=FINAL_RUN_STATES,
        timeline=results.timeline(svc, run_id),
    )


@bp.post("/runs/<int:run_id>/<any(pause, resume, cancel):action>")
@require_role("marketer")
def run_action(run_id: int, action: str) -> ResponseReturnValue:
    svc, who = services(), actor()
    runs.run_status(svc, run_id)  # 404 for a run that does not exist
    if action == "cancel" and request.form.get("confirm") != "yes":
        flash("Tick the box to confirm the cancellation.", "error")
        return redirect(url_for("console.run", run_id=run_id))
    calls: dict[str, Callable[[], object]] = {
        "pause": lambda: runs.pause_run(svc, run_id, actor=who),
        "resume": lambda: runs.resume_run(svc, run_id, actor=who),
        "cancel": lambda: runs.cancel_run(svc, run_id, actor=who),
    }
    done, _ = attempt(action.capitalize(), calls[action])
    if done:
        flash(f"Run {run_id} is {runs.run_status(svc, run_id)['status']}.", "ok")
    return redirect(url_for("console.run", run_id=run_id))
