"""``meridian mail``: the bounce mailbox."""

from __future__ import annotations

import typer

from campaigns.cli.startup import JsonOpt, handled, out, print_json, services
from campaigns.transports import bounce_mailbox

app = typer.Typer(no_args_is_help=True, help="Bounce and complaint reports.")


@app.command("poll")
@handled
def mail_poll(as_json: JsonOpt = False) -> None:
    """Read new bounce and complaint reports from MERIDIAN_BOUNCE_IMAP_URL and act on them."""
    result = bounce_mailbox.poll(services())
    if as_json:
        print_json(result.as_dict())
        return
    out.print(f"{result.read} report(s) read", highlight=False)
    for what, n in sorted(result.decisions.items()):
        kind, _, decision = what.partition(":")
        out.print(f"  {n} {kind}: {decision}", highlight=False)
