"""The template text of a campaign with each lint finding placed at the sentence that
raised it: what the console's review page shows, line by line."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from campaigns.content.copy import templates_key
from campaigns.content.definitions import CampaignDefinition
from campaigns.content.rendering import PARTS

if TYPE_CHECKING:
    from campaigns.services import Services


@dataclass
class Piece:
    text: str
    finding: int | None = None  # index into the findings list, when marked


@dataclass
class Line:
    number: int
    pieces: list[Piece] = field(default_factory=list)


@dataclass
class Part:
    channel: str
    template: str  # folder/part, as findings name it
    lines: list[Line]


def _span(text: str, finding: dict[str, Any]) -> tuple[int, int] | None:
    """Where in the line the finding's sentence (else its phrase) stands."""
    for needle in (finding.get("sentence"), finding.get("phrase")):
        if not needle:
            continue
        # The lint folds runs of spaces to one: match any run of spaces in the text.
        pattern = r"\s+".join(re.escape(w) for w in str(needle).split())
        found = re.search(pattern, text, flags=re.IGNORECASE)
        if found:
            return found.start(), found.end()
    return None


def _marked(text: str, marks: list[tuple[int, int, int]]) -> list[Piece]:
    pieces, at = [], 0
    for start, end, index in sorted(marks):
        if start < at:
            continue  # overlaps a mark already placed: the list below still names it
        if start > at:
            pieces.append(Piece(text[at:start]))
        pieces.append(Piece(text[start:end], index))
        at = end
    if at < len(text) or not pieces:
        pieces.append(Piece(text[at:]))
    return pieces


def annotate(
    svc: Services, definition: CampaignDefinition, findings: list[dict[str, Any]]
) -> list[Part]:
    """Each template part of each channel, its lines split into plain and marked pieces;
    a finding whose sentence cannot be found on its line marks the whole line."""
    parts = []
    key = templates_key(svc, definition)  # the copy in the ledger, else the folder
    for channel in definition.channels:
        for part in PARTS[channel]:
            name = svc.renderer.label(key, part)
            source = svc.renderer.source(key, part)
            lines = []
            for number, text in enumerate(source.splitlines(), start=1):
                marks = []
                for index, f in enumerate(findings):
                    if f.get("template") != name or f.get("line") != number:
                        continue
                    span = _span(text, f) or (0, len(text))
                    marks.append((span[0], span[1], index))
                lines.append(Line(number, _marked(text, marks)))
            parts.append(Part(channel, name, lines))
    return parts
