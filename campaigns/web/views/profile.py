"""Your profile: your own phone and email, where your test sends go."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from campaigns.errors import InputError
from campaigns.people.staff import set_contact
from campaigns.web.context import services
from campaigns.web.security import require_role
from campaigns.web.views.console import actor, bp, problems


@bp.get("/profile")
@require_role("viewer")
def profile() -> ResponseReturnValue:
    me = services().staff.get(actor()) or {}
    return render_template(
        "console/profile.html", phone=me.get("phone") or "", email=me.get("email") or ""
    )


@bp.post("/profile")
@require_role("viewer")
def profile_save() -> ResponseReturnValue:
    phone, email = request.form.get("phone", ""), request.form.get("email", "")
    try:
        set_contact(services(), actor(), phone=phone, email=email)
    except InputError as exc:
        page = render_template(
            "console/profile.html",
            phone=phone,
            email=email,
            refused=exc.message,
            problems=problems(exc),
        )
        return page, 422
    flash("Saved your phone and email.", "ok")
    return redirect(url_for("console.profile"))
