"""Staff users, for admins: who may sign in, with which role. Each change is audited,
and disabling a user or setting a password ends every session of theirs at once."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from campaigns.errors import InputError, NotFound
from campaigns.people.staff import ROLES, change_user, list_users
from campaigns.web.context import services
from campaigns.web.security import require_role
from campaigns.web.views.console import actor, bp


@bp.get("/users")
@require_role("admin")
def users() -> ResponseReturnValue:
    return render_template("console/users.html", users=list_users(services()), roles=ROLES)


@bp.post("/users/<username>/<any(disable, enable, role):action>")
@require_role("admin")
def user_change(username: str, action: str) -> ResponseReturnValue:
    if action == "disable" and username == actor():
        flash("You cannot disable yourself; ask another admin.", "error")
        return redirect(url_for("console.users"))
    change: dict[str, object] = (
        {"role": request.form.get("role", "")}
        if action == "role"
        else {"active": action == "enable"}
    )
    try:
        said = change_user(services(), username, actor=actor(), **change)  # type: ignore[arg-type]
    except (InputError, NotFound) as exc:
        flash(str(exc), "error")
    else:
        flash(said[0].upper() + said[1:] + ".", "ok")
    return redirect(url_for("console.users"))
