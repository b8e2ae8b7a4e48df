"""``meridian``: the operator's command line. Thin: parse, call a service, print.

Each command group is a module of its own (db, patients, campaigns, runs, sms,
users); what they share is campaigns.cli.startup, which plugs in the workers'
dispatcher the installed package declares (campaigns.services.installed_dispatcher).
Exit codes: 0 ok, 1 failure, 2 bad input (the message names file, row, column or
field). Every listing or inspecting command takes ``--json``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from campaigns.cli import doctor, studio, when
from campaigns.cli.campaigns import app as campaigns_app
from campaigns.cli.db import app as db_app
from campaigns.cli.mail import app as mail_app
from campaigns.cli.patients import app as patients_app
from campaigns.cli.runs import app as runs_app
from campaigns.cli.sms import app as sms_app
from campaigns.cli.startup import handled, out, services
from campaigns.cli.users import app as users_app

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Meridian: seasonal email and SMS campaigns for clinics.",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            out.print(f"meridian {version('meridian')}", highlight=False)
        except PackageNotFoundError:  # run from a source tree, not installed
            out.print("meridian (not installed)", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Meridian: seasonal email and SMS campaigns for clinics."""


app.add_typer(db_app, name="db")
app.add_typer(patients_app, name="patients")
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(runs_app, name="runs")
app.add_typer(sms_app, name="sms")
app.add_typer(mail_app, name="mail")
app.add_typer(users_app, name="users")


@app.command("web")
@handled
def web_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the staff console, the JSON API and the public webhooks (development server;
    put a WSGI server such as gunicorn in front of campaigns.web.app in production)."""
    import sys

    from werkzeug import serving

    from campaigns import logs
    from campaigns.web.app import create_app

    svc = services()
    logs.configure(svc.settings.log_format, svc.settings.log_level or "INFO")
    serving._log_add_style = sys.stderr.isatty()  # no colour codes in a log file
    create_app(svc).run(host=host, port=port, threaded=True)


@app.command("demo")
@handled
def demo_command() -> None:
    """Send the cold-and-flu campaign to 1,000 synthetic patients through a real worker."""
    from campaigns.cli.demo import run_demo

    run_demo(out)


when.register(campaigns_app, handled, services)
studio.register(campaigns_app)
app.command("doctor")(doctor.doctor)


def main() -> None:  # pragma: no cover - console script shim
    app()
