"""``meridian campaigns when NAME --patient ID [--occurrence DATE] [--json]``: the
instant one patient's message for one occurrence would go, in UTC and on the clock
of every place the patient might be, with the candidates and the rule that decided.

Registered on the ``campaigns`` group by campaigns.cli.main: ``when.register(
campaigns_app, handled, services)``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from campaigns.errors import InputError
from campaigns.sending.timing import when

if TYPE_CHECKING:
    from campaigns.services import Services

out = Console(soft_wrap=True)


def register(
    group: typer.Typer,
    handled: Callable[[Callable[..., None]], Callable[..., None]],
    services: Callable[[], Services],
) -> None:
    """Add the ``when`` command to ``group`` (the ``campaigns`` group)."""

    @group.command("when")
    @handled
    def campaigns_when(
        name: str,
        patient: Annotated[str, typer.Option("--patient", help="The patient's external_id.")],
        occurrence: Annotated[
            str | None,
            typer.Option(
                "--occurrence",
                help="The occurrence's date, YYYY-MM-DD (default: the schedule's next).",
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ) -> None:
        """When this patient's message for an occurrence would go, and which rule decided."""
        answer = when(services(), name, patient, _occurrence_date(occurrence))
        if as_json:
            sys.stdout.write(json.dumps(answer, indent=2) + "\n")
        else:
            print_answer(out, answer)


def _occurrence_date(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"--occurrence: {text!r} is not a date like 2027-10-15") from None


def print_answer(console: Console, answer: dict[str, Any]) -> None:
    console.print(
        f"campaign {answer['campaign']}, patient {answer['patient']}, occurrence "
        f"{answer['occurrence']} (send time {answer['send_time']} on the patient's clock, "
        f"grace {answer['grace_hours']:g} h)",
        highlight=False,
    )
    for channel, part in answer["channels"].items():
        console.rule(channel)
        if part["consent_skip_reason"]:
            console.print(
                f"gets nothing on {channel}: {part['consent_skip_reason']} (consent or contact); "
                "the clock's answer if that changes:",
                highlight=False,
            )
        if part["at"]:
            console.print(f"sends at {part['at_text']}", highlight=False)
        else:
            console.print(
                f"skipped: {part['skip_reason']} (no lawful instant "
                f"before {datetime.fromisoformat(part['deadline']):%Y-%m-%d %H:%M} UTC)",
                highlight=False,
            )
        console.print(f"decided by: {part['decided_by']}", highlight=False, markup=False)
        console.print(f"source: {part['source']}", highlight=False, markup=False)
        console.print("candidates (the patient's time in each):", highlight=False)
        for c in part["candidates"]:
            console.print(
                f"  {c['local_text']}  {c['zone']}  {c['state'] or '-'}  {c['rule']}",
                highlight=False,
                markup=False,
            )
        console.print(f"why these: {part['why_these_candidates']}", highlight=False, markup=False)
        for e in part["evidence"]:
            console.print(f"  evidence: {e['says']}", highlight=False, markup=False)
        if part["cap_per_24h"]:
            console.print(
                f"cap: {part['cap_per_24h']} texts per 24 hours ({part['cap_state']})",
                highlight=False,
            )
