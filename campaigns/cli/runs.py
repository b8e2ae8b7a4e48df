"""``meridian runs``: a run's status."""

from __future__ import annotations

import typer

from campaigns.cli.startup import JsonOpt, handled, out, print_json, services
from campaigns.sending import runs

app = typer.Typer(no_args_is_help=True, help="Campaign runs.")


@app.command("show")
@handled
def runs_show(run_id: int, as_json: JsonOpt = False) -> None:
    """A run's status and its counts by state and skip reason."""
    status = runs.run_status(services(), run_id)
    if as_json:
        print_json(status)
        return
    from campaigns.cli.progress import print_summary

    print_summary(out, status)
