"""A run's messages over time as bars a template draws in SVG: the bucket size (a
second to a week) chosen from the span so that a run of any size (a hundred texts in
a minute or 100,000 over a week) gets a readable few dozen bars, the y axis rounded to
a tidy top, and the x axis labelled in the clinic's zone.

Pure: campaigns.sending.results asks the ledger (aggregated in SQL) and hands the rows here.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

# Bucket sizes in seconds, smallest first, each with its name for the axis title.
BUCKETS: tuple[tuple[int, str], ...] = (
    (1, "second"),
    (5, "5 seconds"),
    (15, "15 seconds"),
    (60, "minute"),
    (300, "5 minutes"),
    (900, "15 minutes"),
    (1800, "30 minutes"),
    (3600, "hour"),
    (3 * 3600, "3 hours"),
    (6 * 3600, "6 hours"),
    (12 * 3600, "12 hours"),
    (86400, "day"),
    (7 * 86400, "week"),
)
MAX_BARS = 48
MIN_BARS = 12  # a short run is drawn over this many buckets, padded with empty ones
X_LABELS = 6  # about this many labels on the time axis
CHANNEL_ORDER = ("sms", "email")


def choose_bucket(first: datetime, last: datetime, max_bars: int = MAX_BARS) -> tuple[int, str]:
    """The smallest bucket that draws the span in at most ``max_bars`` bars."""
    span = (last - first).total_seconds()
    for size, name in BUCKETS:
        if span / size < max_bars:
            return size, name
    return BUCKETS[-1]


def offset_s(zone: ZoneInfo, at: datetime) -> int:
    """The zone's offset from UTC at ``at`` in seconds: buckets of an hour or a day
    then start on the clinic's clock (the offset of the run's first message)."""
    delta = at.astimezone(zone).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


def nice_top(value: int) -> int:
    """A round number at or above ``value`` (1, 2, 5 times a power of ten) for the y axis."""
    if value <= 1:
        return 1
    power = int(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def build(
    rows: list[tuple[datetime, str, int]], bucket_s: int, bucket_name: str, zone: ZoneInfo
) -> dict[str, Any]:
    """The chart of (bucket start, channel, n) rows: bars with a segment per channel
    (heights in % of the y axis' top), y ticks and x labels, all in the clinic's zone.
    Buckets with nothing sent are drawn as empty bars so time reads evenly."""
    if not rows:
        return {"empty": True, "bars": [], "total": 0}
    per: dict[datetime, dict[str, int]] = {}
    for start, channel, n in rows:
        per.setdefault(start, {})[channel] = per.get(start, {}).get(channel, 0) + n
    first, last = min(per), max(per)
    step = timedelta(seconds=bucket_s)
    count = max(int((last - first) / step) + 1, MIN_BARS)
    starts = [first + i * step for i in range(count)]
    top = nice_top(max(sum(v.values()) for v in per.values()))
    channels = [c for c in CHANNEL_ORDER if any(c in v for v in per.values())]
    channels += sorted({c for v in per.values() for c in v} - set(channels))
    every = max(1, math.ceil(count / X_LABELS))
    bars = []
    for i, start in enumerate(starts):
        counts = per.get(start, {})
        local = start.astimezone(zone)
        segments, y = [], 100.0
        for channel in channels:
            height = 100.0 * counts.get(channel, 0) / top
            if height:
                y -= height
                segments.append({"channel": channel, "y": y, "height": height})
        bars.append(
            {
                "start": local,
                "label": _label(local, bucket_s) if i % every == 0 else "",
                "total": sum(counts.values()),
                "counts": counts,
                "segments": segments,
                "title": f"{local:%a %d %b %H:%M %Z}: {sum(counts.values())} sent",
            }
        )
    first_local, last_local = starts[0].astimezone(zone), (starts[-1] + step).astimezone(zone)
    shown = "%a %d %b %H:%M:%S" if bucket_s < 60 else "%a %d %b %H:%M"
    return {
        "empty": False,
        "bars": bars,
        "channels": channels,
        "top": top,
        "y_ticks": [0, top // 2, top] if top >= 2 else [0, top],
        "bucket": bucket_name,
        "total": sum(sum(v.values()) for v in per.values()),
        "zone": first_local.strftime("%Z"),
        "from": first_local.strftime(shown),
        "to": last_local.strftime(shown),
    }


def _label(local: datetime, bucket_s: int) -> str:
    if bucket_s < 60:
        return local.strftime("%H:%M:%S")
    if bucket_s >= 86400:
        return local.strftime("%d %b")
    if local.hour == 0 and local.minute == 0 and bucket_s >= 3600:
        return local.strftime("%d %b")
    return local.strftime("%H:%M")
