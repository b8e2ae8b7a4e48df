"""The inbox: every text patients send, a thread per number, and what staff do about it.

Threads are addressed by the id of one of their messages, never by the number (URLs
end up in access logs). The navigation shows how many messages need a person.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from campaigns.domain.states import channel_of
from campaigns.errors import InputError, NotFound
from campaigns.people import inbox
from campaigns.store.inbound import InboxView
from campaigns.web.auth import current_staff
from campaigns.web.context import services
from campaigns.web.security import require_role
from campaigns.web.views.console import actor, bp

VIEWS: dict[str, InboxView] = {"review": "review", "booking": "booking", "all": "all"}
VIEW_LABELS = (("review", "Needs review"), ("booking", "Booking requests"), ("all", "All"))


@bp.app_template_global("inbox_open_count")
def _inbox_open_count() -> int:
    """Messages waiting for a person, for the navigation (0 when signed out)."""
    if current_staff() is None:
        return 0
    return services().inbound.open_count()


@bp.get("/inbox")
@require_role("viewer")
def inbox_page() -> ResponseReturnValue:
    view = VIEWS.get(request.args.get("view", "review"), "review")
    threads = services().inbound.threads(view)
    return render_template(
        "console/inbox.html", threads=threads, view=view, view_labels=VIEW_LABELS
    )


@bp.get("/inbound")
@require_role("viewer")
def inbound() -> ResponseReturnValue:
    """The old address of the flagged-texts page: the inbox replaces it."""
    return redirect(
        url_for("console.inbox_page", view="all" if request.args.get("reviewed") else "review")
    )


@bp.get("/inbox/<int:message_id>")
@require_role("viewer")
def inbox_thread(message_id: int) -> ResponseReturnValue:
    svc = services()
    message = inbox.thread_of(svc, message_id)
    phone = str(message["from_phone"])
    suppression = svc.suppressions.current("sms", phone) if phone else None
    return render_template(
        "console/inbox_thread.html",
        message=message,
        messages=svc.inbound.thread_messages(phone),
        patients=svc.inbound.thread_patients(phone),
        suppression=suppression if suppression and suppression.suppressed else None,
        max_chars=inbox.MAX_REPLY_CHARS,
    )


@bp.post("/inbox/<int:message_id>/reply")
@require_role("marketer")
def inbox_reply(message_id: int) -> ResponseReturnValue:
    body = request.form.get("body", "")
    try:
        sent = inbox.send_reply(services(), message_id, body, actor=actor())
    except InputError as exc:
        flash(f"Not sent: {exc.message}", "error")
    else:
        if sent.state == "sent":
            flash("Reply sent.", "ok")
        else:
            flash(f"The provider refused the reply: {sent.error}", "error")
    return redirect(url_for("console.inbox_thread", message_id=message_id))


@bp.post("/inbox/<int:message_id>/done")
@require_role("marketer")
def inbox_done(message_id: int) -> ResponseReturnValue:
    n = inbox.mark_done(services(), message_id, actor=actor())
    flash(f"Marked {n} message{'s' if n != 1 else ''} done." if n else "Nothing was open.", "ok")
    return redirect(url_for("console.inbox_page"))


@bp.post("/inbox/<int:message_id>/suppress")
@require_role("marketer")
def inbox_suppress(message_id: int) -> ResponseReturnValue:
    try:
        added = inbox.suppress_thread(
            services(), message_id, actor=actor(), reason=request.form.get("reason", "")
        )
    except InputError as exc:
        flash(exc.message, "error")
    else:
        flash("Number suppressed." if added else "The number was already suppressed.", "ok")
    return redirect(url_for("console.inbox_thread", message_id=message_id))


@bp.post("/patients/<int:patient_id>/consent/restore")
@require_role("marketer")
def consent_restore(patient_id: int) -> ResponseReturnValue:
    try:
        channel = channel_of(request.form.get("channel", ""))
        inbox.restore_consent(
            services(), patient_id, channel, reason=request.form.get("reason", ""), actor=actor()
        )
    except NotFound:
        raise
    except InputError as exc:
        flash(f"Not restored: {exc.message}", "error")
    else:
        flash(f"{channel.upper()} consent restored; the reason is on file.", "ok")
    return redirect(url_for("console.patient", patient_id=patient_id))
