"""``meridian users``: staff users of the console."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from campaigns.cli.startup import ACTOR, JsonOpt, handled, out, print_json, services

app = typer.Typer(no_args_is_help=True, help="Staff users of the console.")


@app.command("add")
@handled
def users_add(
    username: str,
    role: Annotated[
        str, typer.Option("--role", help="admin, approver, marketer or viewer.")
    ] = "marketer",
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)
    ] = "",
) -> None:
    """Add a staff user; the password is asked for twice and stored as an argon2 hash."""
    from campaigns.people.staff import add_user

    add_user(services(), username, password, role)
    out.print(f"user {username} added as {role}")


@app.command("list")
@handled
def users_list(as_json: JsonOpt = False) -> None:
    """List staff users: username, role, whether active, when added."""
    from campaigns.people.staff import list_users

    users = list_users(services())
    if as_json:
        print_json(users)
        return
    if not users:
        out.print("no staff users yet; add one with `meridian users add NAME --role admin`")
        return
    table = Table("username", "role", "active", "added")
    for user in users:
        added = user["created_at"]
        table.add_row(
            str(user["username"]),
            str(user["role"]),
            "yes" if user["active"] else "no (disabled)",
            added.strftime("%Y-%m-%d") if isinstance(added, datetime) else str(added),
        )
    out.print(table)


def _change(username: str, as_json: bool, **change: object) -> None:
    from campaigns.people.staff import change_user

    said = change_user(services(), username, actor=ACTOR, **change)  # type: ignore[arg-type]
    if as_json:
        print_json({"username": username, "done": said})
    else:
        out.print(said, highlight=False)


@app.command("disable")
@handled
def users_disable(username: str, as_json: JsonOpt = False) -> None:
    """Disable a user: every session of theirs ends now, and sign-in is refused."""
    _change(username, as_json, active=False)


@app.command("enable")
@handled
def users_enable(username: str, as_json: JsonOpt = False) -> None:
    """Enable a disabled user again."""
    _change(username, as_json, active=True)


@app.command("role")
@handled
def users_role(
    username: str,
    role: Annotated[str, typer.Argument(help="admin, approver, marketer or viewer.")],
    as_json: JsonOpt = False,
) -> None:
    """Give a user another role."""
    _change(username, as_json, role=role)


@app.command("passwd")
@handled
def users_passwd(
    username: str,
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Set a user's password (asked twice); every session and API token of theirs ends."""
    _change(username, as_json, password=password)
