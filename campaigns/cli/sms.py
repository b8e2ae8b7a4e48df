"""``meridian sms``: how carriers count a text."""

from __future__ import annotations

import typer

from campaigns.cli.startup import JsonOpt, handled, out, print_json
from campaigns.content import sms

app = typer.Typer(no_args_is_help=True, help="SMS encoding.")


@app.command("segments")
@handled
def sms_segments(text: str, as_json: JsonOpt = False) -> None:
    """How carriers count TEXT: encoding, characters, segments."""
    info = sms.count_segments(text)
    if as_json:
        print_json(info.to_dict())
        return
    forced = f"; UCS-2 because of {' '.join(info.ucs2_characters)}" if info.ucs2_characters else ""
    out.print(
        f"{info.encoding}, {info.characters} characters, {info.segments} segment(s){forced}",
        highlight=False,
    )
