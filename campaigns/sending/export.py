"""A run's message log as CSV, safe to open in a spreadsheet.

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
