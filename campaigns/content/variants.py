"""A/B copy: a campaign's variants, the split, and which patient gets which.

Variant A is the campaign's copy; B, C, ... are versions of the copy in the ledger
that name their variant (campaigns.store.copies). The split gives each a whole
percentage, summing to 100. A patient's variant is a pure function of the campaign id
and the patient id (``assign``: a SHA-256 bucket), never random per attempt, so a
retry, a re-run of a fan-out, or the next occurrence gives them the same one.

A run pins its split and each variant's version when it starts
(``pinned``, stored in ``campaign_runs.variants``); the approval fingerprint covers
the split and every variant's text (``fingerprint_part``), so changing either makes
an approval lapse. Promoting a winner sets the split to that variant alone.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from campaigns.content.copy import Copy, from_block, ledger_key, to_block
from campaigns.errors import InputError, Problem

if TYPE_CHECKING:
    from campaigns.content.definitions import CampaignDefinition
    from campaigns.services import Services

MAIN = "A"
LETTERS = string.ascii_uppercase[:8]  # A..H: more than any clinic needs
_BUCKETS = 10_000  # a patient's bucket: 0.01 % steps


def assign(campaign_id: int, patient_id: int, split: Mapping[str, int]) -> str:
    """The patient's variant: stable for this campaign, spread as the split says."""
    digest = hashlib.sha256(f"meridian-ab:{campaign_id}:{patient_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % _BUCKETS
    edge = 0
    for letter in sorted(split):
        edge += split[letter] * _BUCKETS // 100
        if bucket < edge:
            return letter
    return max(split, key=lambda k: (split[k], k))  # only for rounding; the split sums to 100


def parse_split(raw: Mapping[str, Any], where: str = "split") -> dict[str, int]:
    """A split as staff typed it (letter -> percent) checked: whole percentages 0-100
    summing to 100, A among them. InputError naming each bad field otherwise."""
    problems: list[Problem] = []
    split: dict[str, int] = {}
    for key, value in raw.items():
        letter = str(key).strip().upper()
        if letter not in LETTERS:
            problems.append(Problem(f"{where}.{key}", f"a variant is one of {', '.join(LETTERS)}"))
            continue
        try:
            percent = int(str(value).strip().rstrip("%"))
        except ValueError:
            problems.append(Problem(f"{where}.{letter}", f"'{value}' is not a whole percentage"))
            continue
        if not 0 <= percent <= 100:
            problems.append(Problem(f"{where}.{letter}", "a percentage is between 0 and 100"))
            continue
        split[letter] = percent
    if not problems and sum(split.values()) != 100:
        problems.append(
            Problem(where, f"the percentages add up to {sum(split.values())}; make them 100")
        )
    if problems:
        raise InputError(f"{where}: not a valid split", problems)
    return {k: v for k, v in sorted(split.items()) if v > 0}


def describe(split: Mapping[str, int]) -> str:
    """``A 50 / B 50``."""
    return " / ".join(f"{k} {v}" for k, v in sorted(split.items()))


def pinned(svc: Services, campaign_id: int) -> dict[str, Any] | None:
    """What a run starting now fixes for its life: the split and the version of each
    variant other than A (A's is the run's template_version_id). None: no test, or
    the split gives everyone A."""
    split = svc.variants.split(campaign_id)
    if not split or set(split) == {MAIN}:
        return None
    current = svc.copies.current_variants(campaign_id)
    versions = {k: int(current[k]["id"]) for k in split if k != MAIN and k in current}
    return {"split": split, "versions": versions}


def run_keys(run: Mapping[str, Any], main_key: str) -> dict[str, str]:
    """Each variant's renderer key for a run (``main_key``: A's, the run's copy)."""
    pins = run.get("variants") or {}
    keys = {MAIN: main_key}
    keys.update({k: ledger_key(int(v)) for k, v in (pins.get("versions") or {}).items()})
    return keys


def run_split(run: Mapping[str, Any]) -> dict[str, int] | None:
    """The split a run was started with; None: no test (everyone gets the copy)."""
    pins = run.get("variants") or {}
    split = pins.get("split")
    if not split:
        return None
    versions = pins.get("versions") or {}
    # A variant with no text to send (never saved) cannot be given to anyone.
    live = {k: int(v) for k, v in split.items() if k == MAIN or k in versions}
    return live if len(live) > 1 else None


def fingerprint_part(svc: Services, definition: CampaignDefinition) -> dict[str, Any] | None:
    """The split and every other variant's text, for the approval fingerprint; None
    when the campaign has no test (so approvals made before A/B copy still count)."""
    row = svc.campaigns.get(definition.name)
    if row is None:
        return None
    campaign_id = int(row["id"])
    split = svc.variants.split(campaign_id)
    if not split:
        return None
    current = svc.copies.current_variants(campaign_id)
    texts = {
        k: {c: v[c] for c in ("sms", "email_subject", "email_body", "email_format", "email_text")}
        for k, v in current.items()
        if k in split
    }
    return {"split": split, "texts": texts}


# the YAML block ----------------------------------------------------------------------
# ab:
#   split: {A: 50, B: 50}
#   variants:
#     B: {sms: "...", email: {subject: "...", markdown: "..."}}   # a copy: block


def from_ab_block(block: Any, source: str) -> tuple[dict[str, int], dict[str, Copy]]:
    """An ``ab:`` block as (split, variant letter -> copy); InputError naming the field."""
    where = f"{source}: ab"
    if not isinstance(block, dict) or not isinstance(block.get("split"), dict):
        raise InputError(f"{where}: expected a mapping with 'split' and 'variants'")
    problems = [
        Problem(f"{where}.{k}", "unknown field; use 'split' and 'variants'")
        for k in block
        if k not in ("split", "variants")
    ]
    split = parse_split(block["split"], f"{where}.split")
    texts = block.get("variants") or {}
    if not isinstance(texts, dict):
        raise InputError(f"{where}.variants: expected a mapping of variant letter to copy")
    copies: dict[str, Copy] = {}
    for letter, copy in texts.items():
        if str(letter) not in LETTERS or str(letter) == MAIN:
            problems.append(
                Problem(f"{where}.variants.{letter}", "a variant other than A: B, C, ... H")
            )
            continue
        copies[str(letter)] = from_block(copy, f"{where}.variants.{letter}")
    missing = sorted(k for k in split if k != MAIN and k not in copies)
    problems += [
        Problem(f"{where}.variants.{k}", "the split names it: give its copy") for k in missing
    ]
    if problems:
        raise InputError(f"{where}: not a valid A/B block", problems)
    return split, copies


def apply_ab_block(svc: Services, campaign_id: int, block: Any, *, actor: str, source: str) -> None:
    """Save an ``ab:`` block: each variant's copy as its next version unless it is the
    current one already, and the split unless it is the same."""
    split, copies = from_ab_block(block, source)
    current = svc.copies.current_variants(campaign_id)
    for letter, copy in copies.items():
        now = current.get(letter)
        if now is None or Copy.from_row(now).digest() != copy.digest():
            svc.copies.add(campaign_id, copy.to_columns(), author=actor, variant=letter)
    if svc.variants.split(campaign_id) != split:
        svc.variants.set_split(campaign_id, split, actor=actor, action="ab.split")


def to_ab_block(svc: Services, campaign_id: int) -> dict[str, Any] | None:
    """The campaign's A/B test as an ``ab:`` block, for export; None: no test."""
    split = svc.variants.split(campaign_id)
    if not split:
        return None
    current = svc.copies.current_variants(campaign_id)
    return {
        "split": split,
        "variants": {k: to_block(Copy.from_row(current[k])) for k in sorted(split) if k in current},
    }
