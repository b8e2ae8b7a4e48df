"""A/B copy as staff run it: add a variant from the current copy, edit it, set the
split, promote the winner, stop the test (campaigns.content.variants says who gets
which; campaigns.sending.ab_results how each did).

Every step is a content change: it is audited, and it makes an approval lapse
(approval.lapse_if_changed), so an approver approves the test, and its end, as it
will be sent. Promotion is no exception: promoting B saves B's text as the next
version of the campaign's copy (audited ``copy.promote``) and removes the split, so
later occurrences send only it; the approval lapses unless B's text is what A was.
It stays a two-person change: the marketer who promotes is not the one who approves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from campaigns.content import approval
from campaigns.content.catalogue import lint_definition, load_campaign, mark_acknowledged
from campaigns.content.copy import Copy
from campaigns.content.variants import LETTERS, MAIN, describe, parse_split
from campaigns.errors import InputError, NotFound

if TYPE_CHECKING:
    from campaigns.services import Services


@dataclass
class AbTest:
    """A campaign's A/B test as the copy editor shows it."""

    split: dict[str, int] | None
    variants: dict[str, dict[str, Any]]  # letter other than A -> its newest version

    @property
    def letters(self) -> list[str]:
        return [MAIN, *sorted(self.variants)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "says": describe(self.split) if self.split else "no A/B test",
            "variants": {k: int(v["number"]) for k, v in self.variants.items()},
        }


def ab_test(svc: Services, name: str) -> AbTest:
    row, _ = load_campaign(svc, name)
    cid = int(row["id"])
    split = svc.variants.split(cid)
    found = svc.copies.current_variants(cid)
    # After a test ends its variants' versions stay in the ledger, out of play.
    return AbTest(split, {k: v for k, v in found.items() if split and k in split})


def add_variant(svc: Services, name: str, *, actor: str) -> dict[str, Any]:
    """Variant B (then C, ...) as a copy of the campaign's current copy, with the split
    shared evenly; staff then edit its text and the split."""
    row, _ = load_campaign(svc, name)
    cid = int(row["id"])
    current = svc.copies.current(name)
    if current is None:
        raise InputError(f"campaign {name}: save its copy first; a variant starts from it")
    taken = {MAIN, *(svc.variants.split(cid) or {})}
    letter = next((k for k in LETTERS if k not in taken), None)
    if letter is None:
        raise InputError(f"campaign {name}: {len(LETTERS)} variants are the most it can have")
    version = svc.copies.add(cid, Copy.from_row(current).to_columns(), author=actor, variant=letter)
    letters = sorted(taken | {letter})
    even = {k: 100 // len(letters) for k in letters}
    even[MAIN] += 100 - sum(even.values())
    svc.variants.set_split(cid, even, actor=actor, action="ab.split")
    _lapse(svc, name, actor)
    return version


def save_variant(
    svc: Services, name: str, letter: str, copy: Copy, *, actor: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Lint ``copy`` and save it as the variant's next version (refused, nothing saved,
    when it cannot be rendered)."""
    row, definition = load_campaign(svc, name)
    cid = int(row["id"])
    if letter == MAIN or letter not in (svc.variants.split(cid) or {}):
        raise NotFound(f"campaign {name} has no variant {letter}")
    findings = lint_definition(svc, definition, draft=copy)
    version = svc.copies.add(cid, copy.to_columns(), author=actor, variant=letter)
    _lapse(svc, name, actor)
    return version, mark_acknowledged(definition, findings)


def set_split(svc: Services, name: str, raw: dict[str, Any], *, actor: str) -> dict[str, int]:
    """The split as staff typed it, checked (InputError naming the field)."""
    row, _ = load_campaign(svc, name)
    cid = int(row["id"])
    split = parse_split(raw)
    known = {MAIN, *(svc.variants.split(cid) or {})}
    unknown = sorted(set(split) - known)
    if unknown:
        raise InputError(f"split.{unknown[0]}: campaign {name} has no variant {unknown[0]}")
    svc.variants.set_split(cid, split, actor=actor, action="ab.split")
    _lapse(svc, name, actor)
    return split


def promote(svc: Services, name: str, letter: str, *, actor: str) -> dict[str, Any]:
    """The winner's text becomes the campaign's copy and the test ends: later
    occurrences send only it. Runs already started keep what they pinned."""
    row, _ = load_campaign(svc, name)
    cid = int(row["id"])
    if svc.variants.split(cid) is None:
        raise InputError(f"campaign {name}: no A/B test to promote a variant of")
    if letter == MAIN:
        version = svc.copies.current(name)
        if version is None:
            raise NotFound(f"campaign {name} has no copy")
    else:
        winner = svc.copies.current_variants(cid).get(letter)
        if winner is None:
            raise NotFound(f"campaign {name} has no variant {letter}")
        version = svc.copies.add(
            cid,
            Copy.from_row(winner).to_columns(),
            author=actor,
            restored_from=int(winner["number"]),
        )
    svc.variants.set_split(
        cid, None, actor=actor, action="ab.promote", winner=letter, version=int(version["number"])
    )
    _lapse(svc, name, actor)
    return version


def stop(svc: Services, name: str, *, actor: str) -> None:
    """End the test with no winner: everyone gets A again."""
    row, _ = load_campaign(svc, name)
    svc.variants.set_split(int(row["id"]), None, actor=actor, action="ab.stop")
    _lapse(svc, name, actor)


def _lapse(svc: Services, name: str, actor: str) -> None:
    row, definition = load_campaign(svc, name)
    approval.lapse_if_changed(svc, row, definition, actor=actor)
