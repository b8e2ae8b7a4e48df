"""Following a run in the terminal: a rich progress bar and the closing summary."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from campaigns.domain.states import ACTIVE_DELIVERY_STATES, FINAL_RUN_STATES
from campaigns.sending import runs
from campaigns.services import Services


def follow_run(
    svc: Services, run_id: int, console: Console, *, timeout_s: float = 900, quiet: bool = False
) -> dict[str, Any]:
    """Poll the ledger until the run ends (or nothing is left but waiting for a window)."""
    status = runs.run_status(svc, run_id)
    deadline = time.monotonic() + timeout_s
    with Progress(
        TextColumn("[bold]run {task.fields[run]}[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=False,
    ) as bar:
        task = bar.add_task("fanning out", total=None, run=run_id)
        while time.monotonic() < deadline:
            status = runs.run_status(svc, run_id)
            settled = status["total"] - sum(
                status["by_state"].get(s, 0) for s in ACTIVE_DELIVERY_STATES
            )
            bar.update(
                task, total=status["total"] or None, completed=settled, description=status["status"]
            )
            if status["status"] in FINAL_RUN_STATES:
                break
            time.sleep(0.25)
    return status


def print_summary(console: Console, status: dict[str, Any]) -> None:
    console.print(
        f"[bold]run {status['run_id']}[/bold] of {status['campaign']} "
        f"({status['occurrence']}): {status['status']}"
    )
    for warning in status.get("warnings", []):
        console.print(f"[bold]warning:[/bold] {warning}", highlight=False)
    table = Table("channel", "sent", "delivered", "pending", "failed", "unknown", "skipped")
    for channel, states in sorted(status["by_channel"].items()):
        table.add_row(
            channel,
            *(
                str(states.get(s, 0))
                for s in ("sent", "delivered", "pending", "failed", "unknown", "skipped")
            ),
        )
    console.print(table)
    if status["skip_reasons"]:
        reasons = Table("skipped because", "reason code", "deliveries")
        for skipped in status["skip_reasons"]:
            reasons.add_row(skipped["words"], skipped["reason"], str(skipped["count"]))
        console.print(reasons)
