"""The compliance lint: a table of rules with their sources, applied to templates.

The rules live in ``campaigns/data/compliance_rules.yaml`` so that counsel can change
a phrase or a citation without a code change; this module only knows the three kinds
of rule. ``claim`` findings (health and disease claims) need an acknowledgement before
a campaign is scheduled; ``error`` findings (clinical fields, missing required content)
stop a template being applied. The file's shape is checked by pydantic models when it
is first read: a malformed book fails with ConfigError naming the file, the rule (by
number and id) and the field.
"""

from __future__ import annotations

import bisect
import functools
import html
import importlib.resources
import re
from dataclasses import asdict, dataclass, replace
from string import Template
from typing import Annotated, Literal, NamedTuple

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from campaigns.domain.states import Channel
from campaigns.errors import ConfigError

Severity = Literal["error", "claim"]
Kind = Literal["claim", "clinical_field", "required"]
Requirement = Literal["clinic_name", "clinic_address", "unsubscribe_url"]

RULES_RESOURCE = "data/compliance_rules.yaml"
_ORIGIN = f"campaigns/{RULES_RESOURCE}"
_SEVERITY: dict[Kind, Severity] = {"claim": "claim", "clinical_field": "error", "required": "error"}

# Masks keep every newline so that offsets, and so line numbers, survive masking.
_JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)
_JINJA_CODE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_STRING_LITERAL = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")
_HTML_MARKUP = re.compile(r"<!--.*?-->|</?[a-z!][^>]*>", re.DOTALL | re.IGNORECASE)
_HTML_ENTITY = re.compile(r"&(?:[a-z]+|#\d+|#x[0-9a-f]+);", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    """One thing wrong with a template, where it is, and which rule (and source) says so.

    A claim also carries the exact sentence of the template source it sits in (markup
    and Jinja included, whitespace runs made single spaces) and, when the same rule
    matches the same phrase more than once in that sentence, which one it is: with
    the rule, template, line and phrase, that is the finding's identity, which an
    acknowledgement must name in full (see ``finding_key``).
    """

    rule: str
    severity: Severity
    template: str
    line: int | None
    phrase: str | None
    message: str
    source: str
    sentence: str | None = None
    occurrence: int = 1

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def __str__(self) -> str:
        where = self.template if self.line is None else f"{self.template}:{self.line}"
        what = self.severity if self.phrase is None else f"{self.severity} '{self.phrase}'"
        return f"{where}: {what} ({self.rule}): {self.message}"


@dataclass(frozen=True)
class Rule:
    id: str
    kind: Kind
    channels: frozenset[Channel]
    patterns: tuple[re.Pattern[str], ...]
    requires: Requirement | None
    message: str
    source: str

    @property
    def severity(self) -> Severity:
        return _SEVERITY[self.kind]

    def make_finding(
        self,
        template: str,
        line: int | None,
        phrase: str | None,
        sentence: str | None = None,
        occurrence: int = 1,
    ) -> Finding:
        return Finding(
            self.id,
            self.severity,
            template,
            line,
            phrase,
            self.message,
            self.source,
            sentence,
            occurrence,
        )


@dataclass(frozen=True)
class RuleBook:
    rules: tuple[Rule, ...]

    def select(self, channel: Channel, kind: Kind) -> list[Rule]:
        return [r for r in self.rules if r.kind == kind and channel in r.channels]


@functools.cache
def load_rules() -> RuleBook:
    """The packaged rule book, read once per process."""
    resource = importlib.resources.files("campaigns").joinpath(RULES_RESOURCE)
    return parse_rules(resource.read_text(encoding="utf-8"), origin=_ORIGIN)


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


def parse_rules(text: str, origin: str) -> RuleBook:
    """Build a rule book from YAML text; ``origin`` names the file in error messages.

    A malformed book raises ConfigError naming the file, the rule (number and id)
    and the field, e.g. "rules.yaml: rule 3 ('typo'): field 'souce': unknown field".
    """
    data = yaml.safe_load(text)
    try:
        spec = _BookSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(_problems(exc, data, origin))) from None
    seen: set[str] = set()
    rules = []
    for n, entry in enumerate(spec.rules, 1):
        if entry.id in seen:
            raise ConfigError(f"{origin}: rule id {entry.id!r} is used twice; ids must be unique")
        seen.add(entry.id)
        rules.append(entry.to_rule(spec.terms, f"{origin}: rule {n} ({entry.id!r})"))
    return RuleBook(tuple(rules))


def _one_line(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a non-empty string")
    return " ".join(value.split())


_Text = Annotated[str, AfterValidator(_one_line)]


class _RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: _Text
    kind: Kind
    channels: Annotated[list[Channel], Field(min_length=1)]
    patterns: list[str] = Field(default_factory=list)
    requires: Requirement | None = None
    message: _Text
    source: _Text

    @model_validator(mode="after")
    def _something_to_match(self) -> _RuleSpec:
        if not self.patterns and (self.kind != "required" or self.requires is None):
            raise ValueError("give 'patterns' (or, for a required rule, 'requires')")
        return self

    def to_rule(self, terms: dict[str, str], where: str) -> Rule:
        compiled = []
        for n, pattern in enumerate(self.patterns, 1):
            expanded = Template(pattern.strip()).safe_substitute(terms)
            try:
                compiled.append(re.compile(expanded, re.IGNORECASE))
            except re.error as exc:
                raise ConfigError(
                    f"{where}: pattern {n} is not a valid regular expression: {exc}"
                ) from exc
        return Rule(
            id=self.id,
            kind=self.kind,
            channels=frozenset(self.channels),
            patterns=tuple(compiled),
            requires=self.requires,
            message=self.message,
            source=self.source,
        )


class _BookSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    # Names for regular-expression pieces, used in patterns as ${name}.
    terms: dict[str, str] = Field(default_factory=dict)
    rules: list[_RuleSpec]

    @field_validator("terms", mode="before")
    @classmethod
    def _none_is_no_terms(cls, value: object) -> object:
        return {} if value is None else value


def _problems(exc: ValidationError, data: object, origin: str) -> list[str]:
    """One line per problem: the file, the rule (by number and id), the field, what is wrong."""
    lines = []
    for error in exc.errors():
        loc = list(error["loc"])
        where, fields = origin, sorted(_BookSpec.model_fields)
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            where += f": rule {loc[1] + 1} ({_rule_id(data, loc[1])!r})"
            loc, fields = loc[2:], sorted(_RuleSpec.model_fields)
        if loc:
            where += f": field {'.'.join(str(part) for part in loc)!r}"
        if error["type"] == "value_error":
            problem = str(error["ctx"]["error"])
        elif error["type"] == "extra_forbidden":
            problem = f"unknown field; allowed: {fields}"
        elif error["type"] == "model_type":
            problem = "expected a mapping" + ("" if error["loc"] else " with a 'rules' list")
        elif error["type"] == "missing":
            problem = "required field is missing"
        else:
            problem = error["msg"]
        lines.append(f"{where}: {problem}")
    return lines


def _rule_id(data: object, index: int) -> object:
    """The id a (possibly malformed) rule gives itself, for error messages."""
    try:
        entry = data["rules"][index]  # type: ignore[index]
    except (TypeError, KeyError, IndexError):
        return "?"
    return entry.get("id", "?") if isinstance(entry, dict) else "?"


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
