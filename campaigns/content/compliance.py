"""The compliance lint: a table of rules with their sources, applied to templates.

The rules live in ``campaigns/data/compliance_rules.yaml`` so that counsel can change
a phrase or a citation without a code change; this module only knows the three kinds
of rule. ``claim`` findings (health and disease claims) need an acknowledgement before
a campaign is scheduled; ``error`` findings (clinical fields, missing required content)
stop a template being applied.
"""

from __future__ import annotations

import functools
import html
import importlib.resources
import re
from dataclasses import asdict, dataclass, replace
from string import Template
from typing import Literal, NamedTuple, cast, get_args

import yaml

from campaigns.errors import ConfigError

Severity = Literal["error", "claim"]
Channel = Literal["sms", "email"]
Kind = Literal["claim", "clinical_field", "required"]
Requirement = Literal["clinic_name", "clinic_address", "unsubscribe_url"]

RULES_RESOURCE = "data/compliance_rules.yaml"
_ORIGIN = f"campaigns/{RULES_RESOURCE}"
_SEVERITY: dict[Kind, Severity] = {"claim": "claim", "clinical_field": "error", "required": "error"}
_RULE_KEYS = frozenset({"id", "kind", "channels", "patterns", "requires", "message", "source"})

# Masks keep every newline so that offsets, and so line numbers, survive masking.
_JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)
_JINJA_CODE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_STRING_LITERAL = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")
_HTML_MARKUP = re.compile(r"<!--.*?-->|</?[a-z!][^>]*>", re.DOTALL | re.IGNORECASE)
_HTML_ENTITY = re.compile(r"&(?:[a-z]+|#\d+|#x[0-9a-f]+);", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    """One thing wrong with a template, where it is, and which rule (and source) says so."""

    rule: str
    severity: Severity
    template: str
    line: int | None
    phrase: str | None
    message: str
    source: str

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

    def make_finding(self, template: str, line: int | None, phrase: str | None) -> Finding:
        return Finding(self.id, self.severity, template, line, phrase, self.message, self.source)


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


def lint_source(channel: Channel, template: str, source: str) -> list[Finding]:
    """Find health claims and clinical fields in a template's source, by 1-based line."""
    book = load_rules()
    uncommented = _JINJA_COMMENT.sub(_blank, source)
    hits = _find_claims(book.select(channel, "claim"), uncommented, channel)
    hits += _find_clinical_fields(book.select(channel, "clinical_field"), uncommented)
    hits.sort(key=lambda hit: hit.offset)
    return [
        hit.rule.make_finding(template, _line_of(source, hit.offset), hit.phrase) for hit in hits
    ]


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
    """Build a rule book from YAML text; ``origin`` names the file in error messages."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise ConfigError(f"{origin}: expected a mapping with a 'rules' list")
    terms = data.get("terms") or {}
    if not isinstance(terms, dict) or not all(isinstance(v, str) for v in terms.values()):
        raise ConfigError(f"{origin}: 'terms' must map names to regular-expression strings")
    rules = [
        _parse_rule(entry, f"{origin}: rule {n}", terms) for n, entry in enumerate(data["rules"], 1)
    ]
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise ConfigError(f"{origin}: rule id {rule.id!r} is used twice; ids must be unique")
        seen.add(rule.id)
    return RuleBook(tuple(rules))


def _parse_rule(entry: object, where: str, terms: dict[str, str]) -> Rule:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with id, kind, channels, message, source")
    where = f"{where} ({entry.get('id', '?')!r})"
    unknown = set(entry) - _RULE_KEYS
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_RULE_KEYS)}"
        )
    kind = _read_choice(entry, "kind", get_args(Kind), where)
    channels = entry.get("channels")
    if not isinstance(channels, list) or not channels or not set(channels) <= {"sms", "email"}:
        raise ConfigError(f"{where}: field 'channels' must be a non-empty list of sms, email")
    requires = None
    if "requires" in entry:
        requires = _read_choice(entry, "requires", get_args(Requirement), where)
    patterns = _compile_patterns(entry.get("patterns", []), terms, where)
    if not patterns and (kind != "required" or requires is None):
        raise ConfigError(f"{where}: give 'patterns' (or, for a required rule, 'requires')")
    return Rule(
        id=_read_text(entry, "id", where),
        kind=cast(Kind, kind),
        channels=frozenset(cast(list[Channel], channels)),
        patterns=patterns,
        requires=cast(Requirement | None, requires),
        message=_read_text(entry, "message", where),
        source=_read_text(entry, "source", where),
    )


def _read_text(entry: dict[str, object], name: str, where: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: field {name!r} must be a non-empty string")
    return " ".join(value.split())


def _read_choice(entry: dict[str, object], name: str, choices: tuple[str, ...], where: str) -> str:
    value = entry.get(name)
    if value not in choices:
        raise ConfigError(f"{where}: field {name!r} is {value!r}; expected one of {list(choices)}")
    return value


def _compile_patterns(
    raw: object, terms: dict[str, str], where: str
) -> tuple[re.Pattern[str], ...]:
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise ConfigError(f"{where}: field 'patterns' must be a list of strings")
    compiled = []
    for n, pattern in enumerate(raw, 1):
        expanded = Template(pattern.strip()).safe_substitute(terms)
        try:
            compiled.append(re.compile(expanded, re.IGNORECASE))
        except re.error as exc:
            raise ConfigError(
                f"{where}: pattern {n} is not a valid regular expression: {exc}"
            ) from exc
    return tuple(compiled)


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
