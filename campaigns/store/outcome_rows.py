"""A slice's outcomes into the deliveries table in one statement.

Every outcome of a slice (sent with its provider id, failed with its code and
reason, skipped with its reason) is written by one UPDATE that finds each delivery
by its primary key, only while it is still claimed (``sending``): PostgreSQL reads
the rows from arrays (``unnest``), SQLite from one JSON array (``json_each``). An
UPDATE per row was a sixth of a PostgreSQL sender's CPU and a tenth of a SQLite one's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, text

from campaigns.domain.models import Outcome
from campaigns.store.schema import UtcDateTime


def record_outcomes(conn: Connection, outcomes: Sequence[Outcome], now: datetime) -> None:
    """Write ``outcomes`` in ``conn``'s transaction."""
    if conn.dialect.name == "postgresql":
        _record_unnested(conn, outcomes, now)
    else:
        _record_json_each(conn, outcomes, now)


# A slice's outcomes as one statement of arrays on PostgreSQL: one row of parameters
# per outcome through SQLAlchemy's executemany cost more CPU than the rest of the
# record (bench/throughput.py --profile). The join goes by the primary key whatever
# the statistics say (bench/explain.py).
_RECORD_SQL = """
UPDATE deliveries AS d
SET state = o.state, provider_id = o.provider_id, error_code = o.error_code,
    error_reason = o.error_reason, skip_reason = o.skip_reason,
    sent_at = CASE WHEN o.state = 'sent' THEN %(now)s END, updated_at = %(now)s
FROM unnest(%(ids)s::bigint[], %(states)s::text[], %(providers)s::text[],
            %(codes)s::text[], %(reasons)s::text[], %(skips)s::text[])
     AS o(id, state, provider_id, error_code, error_reason, skip_reason)
WHERE d.id = o.id AND d.state = 'sending'
"""


def _record_unnested(conn: Connection, outcomes: Sequence[Outcome], now: datetime) -> None:
    conn.exec_driver_sql(
        _RECORD_SQL,
        {
            "now": now.astimezone(UTC).replace(tzinfo=None),
            "ids": [o.delivery_id for o in outcomes],
            "states": [str(o.state) for o in outcomes],
            "providers": [o.provider_id for o in outcomes],
            "codes": [o.error_code for o in outcomes],
            "reasons": [o.error_reason for o in outcomes],
            "skips": [None if o.skip_reason is None else str(o.skip_reason) for o in outcomes],
        },
    )


# SQLite's one statement for a slice's outcomes: a JSON array of rows read by
# json_each, each delivery found by its primary key (an executemany of an UPDATE per
# row was a tenth of a SQLite sender's CPU).
_RECORD_SQLITE = text(
    """
UPDATE deliveries
SET state = json_extract(o.value, '$[1]'), provider_id = json_extract(o.value, '$[2]'),
    error_code = json_extract(o.value, '$[3]'), error_reason = json_extract(o.value, '$[4]'),
    skip_reason = json_extract(o.value, '$[5]'),
    sent_at = CASE WHEN json_extract(o.value, '$[1]') = 'sent' THEN :now END,
    updated_at = :now
FROM json_each(:rows) AS o
WHERE deliveries.id = json_extract(o.value, '$[0]') AND deliveries.state = 'sending'
"""
).bindparams(bindparam("now", type_=UtcDateTime()))


def _record_json_each(conn: Connection, outcomes: Sequence[Outcome], now: datetime) -> None:
    rows = [
        [
            o.delivery_id,
            str(o.state),
            o.provider_id,
            o.error_code,
            o.error_reason,
            None if o.skip_reason is None else str(o.skip_reason),
        ]
        for o in outcomes
    ]
    conn.execute(_RECORD_SQLITE, {"now": now, "rows": json.dumps(rows)})
