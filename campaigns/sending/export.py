"""A run's message log and its results as CSV, safe to open in a spreadsheet.

The results (``results_csv``): one row per figure the run page shows (``RESULT_COLUMNS``):
deliveries by channel and state, skip reasons and failures with their words, clicks
and bookings, and each A/B variant's figures.

One row per delivery (``LOG_COLUMNS``): ids, channel, state, times,
skip reason, error code, clicked, booked. No message bodies and no contact data; the
patient by external id only. Every cell a spreadsheet would read as a formula (one
starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return: OWASP's list) is
neutralised with a leading ``'``. Written a chunk at a time, so a large run streams.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from campaigns.sending import ab_results, results
from campaigns.sending.runs import run_status

if TYPE_CHECKING:
    from campaigns.services import Services

# The columns, in order: what store.engagement's message_log gives per delivery.
LOG_COLUMNS = (
    "delivery_id",
    "patient_external_id",
    "channel",
    "state",
    "due_at",
    "sent_at",
    "updated_at",
    "attempts",
    "skip_reason",
    "error_code",
    "clicked",
    "booked",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """The value as a CSV cell no spreadsheet evaluates."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def message_log_csv(svc: Services, run_id: int, rows_per_chunk: int = 1000) -> Iterator[str]:
    """The run's message log as CSV text, header first, in chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(LOG_COLUMNS)
    for n, row in enumerate(svc.engagement.message_log(run_id), start=1):
        writer.writerow([safe_cell(row[c]) for c in LOG_COLUMNS])
        if n % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


RESULT_COLUMNS = ("section", "channel", "item", "count", "words")


def results_rows(svc: Services, run_id: int) -> Iterator[tuple[Any, ...]]:
    """The run's figures, one per row, in the order of ``RESULT_COLUMNS``."""
    status = run_status(svc, run_id)
    for channel, states in sorted(status["by_channel"].items()):
        for state, n in sorted(states.items()):
            yield ("deliveries", channel, state, n, "")
    for state, n in sorted(status["by_state"].items()):
        yield ("deliveries", "all", state, n, "")
    for skipped in status["skip_reasons"]:
        yield ("skipped", "all", skipped["reason"], skipped["count"], skipped["words"])
    for failure in results.run_results(svc, run_id)["failures"]:
        words = "; ".join(w for w in (failure["meaning"], failure["reason"]) if w)
        yield ("failed", failure["state"], failure["code"], failure["count"], words)
    engaged = svc.engagement.engagement([run_id]).get(run_id, {})
    for item in ("clicked", "clicks", "booked"):
        yield ("engagement", "all", item, engaged.get(item, 0), "")
    ab = ab_results.variant_results_engaged(svc, run_id)
    for row in [] if ab is None else ab["variants"]:
        for item in ("patients", "sent", "delivered", "clicked", "booked"):
            yield (f"variant {row['variant']}", "all", item, row.get(item), "")
    for comparison in [] if ab is None else ab["comparisons"]:
        yield ("variants compared", "all", comparison.get("outcome", ""), "", comparison["says"])


def results_csv(svc: Services, run_id: int) -> str:
    """The run's results as CSV text (a few dozen rows whatever the run's size)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(RESULT_COLUMNS)
    for row in results_rows(svc, run_id):
        writer.writerow([safe_cell(v) for v in row])
    return buffer.getvalue()
