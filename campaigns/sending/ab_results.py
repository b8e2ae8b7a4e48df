"""A/B results: each variant's figures for a run, and whether a difference between
two variants is more than chance, in plain words.

The test is the two-proportion z-test (statsmodels' ``proportions_ztest``, two-sided,
pooled). With fewer than ``MIN_PER_VARIANT`` messages in a variant, or fewer than
``MIN_EVENTS`` of the outcome (or of its absence) in either, the normal approximation
behind it does not hold: the note says the samples are too small instead of a number.

Clicked and booked come from other parts of the ledger: ``variant_results`` takes
them per variant (``clicked`` / ``booked``: letter -> count) and words them the same
way as delivered.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from statsmodels.stats.proportion import proportions_ztest

from campaigns.content import variants

if TYPE_CHECKING:
    from campaigns.services import Services

MIN_PER_VARIANT = 30
MIN_EVENTS = 5
SIGNIFICANT = 0.05  # below this, "more than chance" (said as a plain odds too)
# each outcome as the sentence says it ({more}, {less}, {d}: the points); "differ in <noun>"
_LEAD = {
    "delivered": "{more}'s texts were delivered {d} points more often than {less}'s",
    "clicked": "{more} was clicked by {d} points more patients than {less}",
    "booked": "{more} led to bookings by {d} points more patients than {less}",
}
_NOUN = {"delivered": "deliveries", "clicked": "clicks", "booked": "bookings"}


@dataclass(frozen=True)
class Comparison:
    """One outcome compared between two variants."""

    outcome: str  # delivered, clicked, booked
    first: str  # the variant letters compared
    second: str
    p_value: float | None  # None: samples too small to say
    difference: float  # percentage points, second minus first
    sentence: str

    @property
    def more_than_chance(self) -> bool:
        return self.p_value is not None and self.p_value < SIGNIFICANT

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "variants": [self.first, self.second],
            "difference_points": round(self.difference, 1),
            "p_value": None if self.p_value is None else round(self.p_value, 4),
            "more_than_chance": self.more_than_chance,
            "says": self.sentence,
        }


def compare(
    outcome: str, first: str, hits_1: int, n_1: int, second: str, hits_2: int, n_2: int
) -> Comparison:
    """Is ``second``'s rate of ``outcome`` different from ``first``'s by more than chance?"""
    if min(n_1, n_2) < MIN_PER_VARIANT or min(hits_1, hits_2, n_1 - hits_1, n_2 - hits_2) < (
        MIN_EVENTS
    ):
        rate = (
            ""
            if min(n_1, n_2) == 0
            else f" ({first} {100 * hits_1 / n_1:.1f} %, {second} {100 * hits_2 / n_2:.1f} %)"
        )
        diff = 0.0 if min(n_1, n_2) == 0 else 100 * (hits_2 / n_2 - hits_1 / n_1)
        return Comparison(
            outcome,
            first,
            second,
            None,
            diff,
            f"The samples are too small to tell whether {first} and {second} differ in "
            f"{_NOUN.get(outcome, outcome)}"
            f"{rate}: a fair comparison needs at least {MIN_PER_VARIANT} in each variant, "
            f"with at least {MIN_EVENTS} {_NOUN.get(outcome, outcome)} and {MIN_EVENTS} "
            "without in each.",
        )
    diff = 100 * (hits_2 / n_2 - hits_1 / n_1)
    _, p = proportions_ztest([hits_2, hits_1], [n_2, n_1], alternative="two-sided")
    p = float(p) if not math.isnan(p) else 1.0
    if abs(diff) < 0.05:
        lead = f"{first} and {second} did the same ({_NOUN.get(outcome, outcome)})"
    else:
        more, less = (second, first) if diff > 0 else (first, second)
        lead = _LEAD.get(outcome, "{more} did {d} points better than {less}").format(
            more=more, less=less, d=f"{abs(diff):.1f}"
        )
    chance = _in_words(p)
    verdict = "more than chance" if p < SIGNIFICANT else "it could well be chance"
    return Comparison(
        outcome,
        first,
        second,
        p,
        diff,
        f"{lead}; a difference this size happens by chance {chance} (p = {_p(p)}): {verdict}.",
    )


def _in_words(p: float) -> str:
    if p < 0.001:
        return "less than once in 1,000"
    if p < 0.01:
        return _times(round(p * 1000), "1,000")
    return _times(round(p * 100), "100")


def _times(n: int, out_of: str) -> str:
    return f"once in {out_of}" if n == 1 else f"{n} times in {out_of}"


def _p(p: float) -> str:
    return (
        "< 0.001" if p < 0.001 else f"{p:.3f}".rstrip("0").rstrip(".") if p < 0.01 else f"{p:.2f}"
    )


def variant_results(
    svc: Services,
    run_id: int,
    *,
    clicked: Mapping[str, int] | None = None,
    booked: Mapping[str, int] | None = None,
) -> dict[str, Any] | None:
    """A run's A/B results: per variant its figures (clicked and booked None until
    given) and, per outcome, how each variant compares with A. None: not an A/B run."""
    run = svc.runs.get(run_id)
    if run is None:
        return None
    split = variants.run_split(run)
    if split is None:
        return None
    figures = svc.variants.run_figures(run_id)
    rows = []
    for letter in sorted(set(split) | set(figures)):
        row: dict[str, Any] = {"variant": letter, "percent": split.get(letter, 0)}
        row.update(
            figures.get(letter)
            or dict.fromkeys(
                (
                    "patients",
                    "sent",
                    "texts_sent",
                    "delivered",
                    "undelivered",
                    "failed",
                    "skipped",
                ),
                0,
            )
        )
        row["clicked"] = None if clicked is None else int(clicked.get(letter, 0))
        row["booked"] = None if booked is None else int(booked.get(letter, 0))
        rows.append(row)
    base = next((r for r in rows if r["variant"] == variants.MAIN), rows[0])
    comparisons = []
    for outcome, of in (
        ("delivered", "texts_sent"),
        ("clicked", "patients"),
        ("booked", "patients"),
    ):
        # delivered: of the texts handed over (only SMS has receipts); clicked and
        # booked: of the patients given the variant
        if base[outcome] is None or (outcome == "delivered" and not any(r[of] for r in rows)):
            continue  # not counted (yet), or no texts sent
        for other in rows:
            if other is base:
                continue
            comparisons.append(
                compare(
                    outcome,
                    base["variant"],
                    base[outcome],
                    base[of],
                    other["variant"],
                    other[outcome],
                    other[of],
                )
            )
    return {
        "split": split,
        "says": variants.describe(split),
        "variants": rows,
        "comparisons": [c.to_dict() for c in comparisons],
    }


def variant_results_engaged(svc: Services, run_id: int) -> dict[str, Any] | None:
    """:func:`variant_results` with the patients who clicked and who booked, per
    variant (store.engagement), as the run page, the API and the CSV show them."""
    run = svc.runs.get(run_id)
    split = None if run is None else variants.run_split(run)
    engaged = svc.engagement.patients_by_variant(run_id)
    letters = set(engaged) | set(split or {})
    clicked = {v: engaged.get(v, {}).get("clicked", 0) for v in letters}
    booked = {v: engaged.get(v, {}).get("booked", 0) for v in letters}
    return variant_results(svc, run_id, clicked=clicked, booked=booked)
