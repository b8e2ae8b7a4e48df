"""The compliance rule book: ``campaigns/data/compliance_rules.yaml``, read and checked.

The rules live in a YAML file so that counsel can change a phrase or a citation
without a code change; this module only knows the three kinds of rule and what a
finding of one looks like. The file's shape is checked by pydantic models when it is
first read: a malformed book fails with ConfigError naming the file, the rule (by
number and id) and the field. The lint that applies the rules is
campaigns.content.compliance.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from dataclasses import asdict, dataclass
from string import Template
from typing import Annotated, Literal

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
