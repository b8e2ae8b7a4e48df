"""The dashboard: upcoming sends, recent runs, and two weeks of outcomes as a chart."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import render_template
from flask.typing import ResponseReturnValue

from campaigns.clock import schedules
from campaigns.content.definitions import parse_stored_definition
from campaigns.domain.states import CampaignState
from campaigns.services import Services
from campaigns.web.context import services
from campaigns.web.security import require_role
from campaigns.web.views.console import bp

CHART_DAYS = 14
_CHART_STATES = ("delivered", "sent", "undelivered", "failed", "unknown", "skipped")


@bp.get("/")
@require_role("viewer")
def dashboard() -> ResponseReturnValue:
    svc = services()
    first_day = (svc.now() - timedelta(days=CHART_DAYS - 1)).date()
    chart = _chart(svc.reports.messages_per_day(first_day), first_day)
    return render_template(
        "console/dashboard.html",
        upcoming=upcoming_sends(svc),
        recent=svc.reports.recent_runs(10),
        chart=chart,
        patients=svc.patients.count(),
    )


def upcoming_sends(svc: Services, per_campaign: int = 3) -> list[dict[str, Any]]:
    """The next occurrences of every scheduled campaign, soonest first."""
    found = []
    for row in svc.campaigns.all():
        if row["status"] != CampaignState.SCHEDULED:
            continue
        definition = parse_stored_definition(row["definition"], f"campaign {row['name']}")
        schedule = definition.schedule.to_schedule(svc.settings.clinic_timezone)
        for when in schedules.next_sends(schedule, svc.now(), per_campaign):
            found.append({"campaign": row["name"], "when": when})
    return sorted(found, key=lambda s: s["when"])


def _chart(rows: list[tuple[date, str, int]], first: date) -> dict[str, Any]:
    """Bars for a stacked chart: one per day, one segment per outcome, heights in %."""
    per_day: dict[date, dict[str, int]] = {first + timedelta(days=i): {} for i in range(CHART_DAYS)}
    for day, state, n in rows:
        per_day.setdefault(day, {})[state] = n
    top = max((sum(v.values()) for v in per_day.values()), default=0) or 1
    bars = []
    for day, counts in sorted(per_day.items()):
        segments, y = [], 100.0
        for state in _CHART_STATES:
            height = 100.0 * counts.get(state, 0) / top
            if height:
                y -= height
                segments.append({"state": state, "y": y, "height": height, "n": counts[state]})
        bars.append(
            {"day": day, "total": sum(counts.values()), "segments": segments, "counts": counts}
        )
    return {"bars": bars, "states": _CHART_STATES, "top": top}
