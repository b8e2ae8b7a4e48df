"""``meridian users``: staff users of the console."""

from __future__ import annotations

from typing import Annotated

import typer

from campaigns.cli.startup import handled, out, services

app = typer.Typer(no_args_is_help=True, help="Staff users of the console.")


@app.command("add")
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
