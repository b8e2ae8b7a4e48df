"""The compliance lint: the rule book (campaigns.content.compliance_rules) applied to templates.

``claim`` findings (health and disease claims) need an acknowledgement before a
campaign is scheduled; ``error`` findings (clinical fields, missing required content)
stop a template being applied.
"""

from __future__ import annotations

import bisect
import html
import re
from dataclasses import replace
from typing import NamedTuple

from campaigns.content.compliance_rules import Finding, Requirement, Rule, load_rules
from campaigns.domain.states import Channel

# Masks keep every newline so that offsets, and so line numbers, survive masking.
_JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)
_JINJA_CODE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_STRING_LITERAL = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")
_HTML_MARKUP = re.compile(r"<!--.*?-->|</?[a-z!][^>]*>", re.DOTALL | re.IGNORECASE)
_HTML_ENTITY = re.compile(r"&(?:[a-z]+|#\d+|#x[0-9a-f]+);", re.IGNORECASE)


FindingKey = tuple[str, str, int, str, str, int]


def finding_key(finding: Finding | dict[str, object]) -> FindingKey | None:
    """(rule, template, line, phrase, sentence, occurrence): what an acknowledgement names.

    None for a finding that cannot be acknowledged (an error, or a claim stored
    before findings carried their sentence).
    """
    f = finding.to_dict() if isinstance(finding, Finding) else finding
    if f.get("severity") != "claim" or not f.get("sentence") or not f.get("line"):
        return None
    return (
        str(f["rule"]),
        str(f["template"]),
        int(f["line"]),  # type: ignore[call-overload]
        str(f["phrase"]),
        str(f["sentence"]),
        int(f.get("occurrence") or 1),  # type: ignore[call-overload]
    )


def lint_source(channel: Channel, template: str, source: str) -> list[Finding]:
    """Find health claims and clinical fields in a template's source, by 1-based line."""
    book = load_rules()
    uncommented = _JINJA_COMMENT.sub(_blank, source)
    hits = _find_claims(book.select(channel, "claim"), uncommented, channel)
    hits += _find_clinical_fields(book.select(channel, "clinical_field"), uncommented)
    hits.sort(key=lambda hit: hit.offset)
    bounds = _sentence_bounds(uncommented, channel) if hits else []
    seen: dict[tuple[str, str, int], int] = {}
    findings = []
    for hit in hits:
        sentence = occurrence = None
        if hit.rule.kind == "claim":
            start, end = _sentence_around(bounds, hit.offset, len(source))
            sentence = " ".join(source[start:end].split())
            key = (hit.rule.id, hit.phrase.casefold(), start)
            occurrence = seen[key] = seen.get(key, 0) + 1
        findings.append(
            hit.rule.make_finding(
                template, _line_of(source, hit.offset), hit.phrase, sentence, occurrence or 1
            )
        )
    return findings


def lint_rendered(
    channel: Channel,
    template: str,
    text: str,
    *,
    clinic_name: str,
    clinic_address: str,
    unsubscribe_url: str | None,
) -> list[Finding]:
    """Check a rendered message carries what it must. For email, call once per part."""
    values: dict[Requirement, str | None] = {
        "clinic_name": clinic_name,
        "clinic_address": clinic_address,
        "unsubscribe_url": unsubscribe_url,
    }
    findings = []
    for rule in load_rules().select(channel, "required"):
        if rule.requires is not None and not (values[rule.requires] or "").strip():
            finding = rule.make_finding(template, None, None)
            note = f" (No {rule.requires.replace('_', ' ')} was given to check against.)"
            findings.append(replace(finding, message=finding.message + note))
        elif not _is_present(rule, text, values):
            findings.append(rule.make_finding(template, None, None))
    return findings


class _Hit(NamedTuple):
    offset: int
    rule: Rule
    phrase: str


def _find_claims(rules: list[Rule], source: str, channel: Channel) -> list[_Hit]:
    text = _mask_code_keeping_strings(source)
    if channel == "email":
        text = _HTML_ENTITY.sub(_blank, _HTML_MARKUP.sub(_blank, text))
    spans = [
        (m.start(), m.end(), rule)
        for rule in rules
        for p in rule.patterns
        for m in p.finditer(text)
    ]
    # Widest first, so that "prevents the virus" swallows the "virus" inside it.
    spans.sort(key=lambda span: (span[0], -span[1]))
    kept: list[tuple[int, int, Rule]] = []
    for start, end, rule in spans:
        if end > start and not any(s <= start and end <= e for s, e, _ in kept):
            kept.append((start, end, rule))
    return [_Hit(start, rule, " ".join(text[start:end].split())) for start, end, rule in kept]


_SENTENCE_END = re.compile(r"[.!?]+(?=[\s\"')\]]|$)")
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_BLOCK_TAG = re.compile(
    r"</?(?:p|br|div|td|th|tr|li|ul|ol|h[1-6]|table|title|blockquote|hr|body|head)\b[^>]*>",
    re.IGNORECASE,
)


def _sentence_bounds(source: str, channel: Channel) -> list[int]:
    """Offsets where sentences start or end: after . ! ? in the text (Jinja code and
    markup masked), at blank lines, at both ends of block-level HTML tags, and at
    both ends of Jinja statements ({% %}), which stand between blocks of text."""
    code_masked = _mask_code_keeping_strings(source)
    text = code_masked
    if channel == "email":
        text = _HTML_ENTITY.sub(_blank, _HTML_MARKUP.sub(_blank, code_masked))
    bounds = {0, len(source)}
    bounds.update(m.end() for m in _SENTENCE_END.finditer(text))
    for pattern, where in ((_PARAGRAPH, source), (_BLOCK_TAG, code_masked)):
        for m in pattern.finditer(where):
            bounds.update((m.start(), m.end()))
    for m in re.finditer(r"\{%.*?%\}", source, re.DOTALL):
        bounds.update((m.start(), m.end()))
    return sorted(bounds)


def _sentence_around(bounds: list[int], offset: int, size: int) -> tuple[int, int]:
    index = bisect.bisect_right(bounds, offset)
    start = bounds[index - 1] if index else 0
    end = bounds[index] if index < len(bounds) else size
    return start, end


def _find_clinical_fields(rules: list[Rule], source: str) -> list[_Hit]:
    return [
        _Hit(code.start() + m.start(), rule, m.group())
        for code in _JINJA_CODE.finditer(source)
        for rule in rules
        for pattern in rule.patterns
        for m in pattern.finditer(code.group())
    ]


def _is_present(rule: Rule, text: str, values: dict[Requirement, str | None]) -> bool:
    visible = html.unescape(_HTML_MARKUP.sub(" ", text))
    if any(p.search(visible) for p in rule.patterns):
        return True
    value = values[rule.requires] if rule.requires is not None else None
    if not value:
        return False
    if rule.requires == "unsubscribe_url":
        # Raw text too: the link usually sits inside an href, which markup removal drops.
        return value in text or value in html.unescape(text)
    if rule.requires == "clinic_address":
        # A line break (or <br>) often stands where the configured address has a comma.
        return _compact(value) in _compact(visible)
    return " ".join(value.casefold().split()) in " ".join(visible.casefold().split())


def _compact(text: str) -> str:
    return re.sub(r"[\s,]+", "", text).casefold()


def _mask_code_keeping_strings(source: str) -> str:
    """Blank Jinja code, keeping its string literals: only those can render as words."""

    def mask(code: re.Match[str]) -> str:
        kept, last = [], 0
        for literal in _STRING_LITERAL.finditer(code.group()):
            kept.append(_blank_text(code.group()[last : literal.start()]))
            kept.append(literal.group())
            last = literal.end()
        kept.append(_blank_text(code.group()[last:]))
        return "".join(kept)

    return _JINJA_CODE.sub(mask, source)


def _blank(match: re.Match[str]) -> str:
    return _blank_text(match.group())


def _blank_text(text: str) -> str:
    return re.sub(r"[^\n]", " ", text)


def _line_of(source: str, offset: int) -> int:
    return source.count("\n", 0, offset) + 1
