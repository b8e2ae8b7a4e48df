"""What a patient's text means, read so that errors fall on the patient's side.

The word lists, patterns and the example table live in ``campaigns/data/replies.yaml``
(each list with its source), checked by pydantic when first read. The order of
decision:

1. The whole reply is a START or HELP word: ``start`` / ``help`` (handled, no review).
2. The whole reply is an opt-out word ("STOP", "Alto", "No más"): ``stop``, no review.
3. It says the number is someone else's ("wrong number"): ``wrong_number``.
4. An opt-out word appears anywhere ("STOP please", "Please stop", "Remove me"): ``stop``,
   flagged for review; unless every occurrence is covered by an exception that makes
   it plainly not about messages ("I can't stop sneezing") and the reply does not
   mention messages at all.
5. Free text that reads as a revocation ("leave me alone", "not interested"):
   ``revocation``, flagged.
6. A booking request ("Can I book Tuesday at 3?"): ``booking``, flagged.
7. An opt-out word judged not about messages: ``unclear``, flagged; consent stays.
8. Anything else: ``other``, flagged (kept and shown to staff).

``stop`` and ``revocation`` revoke SMS consent at once and suppress the number;
``wrong_number`` suppresses the number. Nothing here logs a message.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from campaigns.errors import ConfigError

ReplyKind = Literal[
    "stop", "revocation", "start", "help", "wrong_number", "unclear", "booking", "other"
]
REPLY_KINDS: tuple[ReplyKind, ...] = (
    "stop",
    "revocation",
    "start",
    "help",
    "wrong_number",
    "unclear",
    "booking",
    "other",
)
REPLIES_FILE = "campaigns/data/replies.yaml"
_RESOURCE = "data/replies.yaml"


@dataclass(frozen=True)
class Reading:
    """How a reply was read: its kind and what Meridian does about it."""

    kind: ReplyKind
    needs_review: bool
    keyword_kept: bool = False  # an opt-out word was judged not about messages

    @property
    def revokes(self) -> bool:
        return self.kind in ("stop", "revocation")

    @property
    def suppresses(self) -> bool:
        return self.kind in ("stop", "revocation", "wrong_number")


def normalize(text: str) -> str:
    """Accents and case folded, apostrophes dropped, punctuation and emoji as spaces."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c)).casefold()
    folded = re.sub(r"['\u2018\u2019\u02bc`]", "", folded)
    folded = folded.replace("#", " number ")
    folded = re.sub(r"[\W_]+", " ", folded)
    return " ".join(folded.split())


def read_reply(body: str) -> Reading:
    """Read one inbound text (see the module docstring for the order)."""
    rules = replies_rules()
    text = normalize(body)
    if not text:
        return Reading("other", needs_review=True)
    if text in rules.start:
        return Reading("start", needs_review=False)
    if text in rules.help:
        return Reading("help", needs_review=False)
    if text in rules.opt_out:
        return Reading("stop", needs_review=False)
    if rules.wrong_number.search(text):
        return Reading("wrong_number", needs_review=True)
    has_keyword = bool(rules.opt_out_re.search(text))
    if has_keyword:
        if rules.message_words_re.search(text):
            return Reading("stop", needs_review=True)
        left = rules.exceptions.sub(" ", text)
        if rules.opt_out_re.search(left):
            return Reading("stop", needs_review=True)
    if rules.revocation.search(text):
        return Reading("revocation", needs_review=True)
    if rules.booking.search(text):
        return Reading("booking", needs_review=True, keyword_kept=has_keyword)
    if has_keyword:
        return Reading("unclear", needs_review=True, keyword_kept=True)
    return Reading("other", needs_review=True)


def is_promotional(text: str) -> str | None:
    """The first promotional word in a staff reply, or None."""
    found = replies_rules().promotional_re.search(normalize(text.replace("%", " percent ")))
    return found.group(0) if found else None


# the data file ------------------------------------------------------------------------


class _Words(BaseModel):
    model_config = ConfigDict(extra="forbid")
    words: list[str] = Field(min_length=1)
    source: str


class _Pattern(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pattern: str
    source: str
    why: str | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        return value


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    kind: ReplyKind
    review: bool | None = None


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: dict[str, str]
    opt_out: list[_Words]
    start: list[_Words]
    help: list[_Words]
    message_words: _Words
    exceptions: list[_Pattern]
    revocation: list[_Pattern]
    wrong_number: list[_Pattern]
    booking: list[_Pattern]
    promotional: _Words
    examples: list[Example]


@dataclass(frozen=True)
class Rules:
    opt_out: frozenset[str]
    start: frozenset[str]
    help: frozenset[str]
    opt_out_re: re.Pattern[str]
    message_words_re: re.Pattern[str]
    exceptions: re.Pattern[str]
    revocation: re.Pattern[str]
    wrong_number: re.Pattern[str]
    booking: re.Pattern[str]
    promotional_re: re.Pattern[str]
    examples: tuple[Example, ...]


def _words(lists: list[_Words]) -> frozenset[str]:
    return frozenset(normalize(w) for entry in lists for w in entry.words)


def _any_word(words: frozenset[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def _any_pattern(patterns: list[_Pattern]) -> re.Pattern[str]:
    return re.compile("|".join(rf"(?<!\w)(?:{p.pattern})(?!\w)" for p in patterns))


def parse_rules(text: str, origin: str) -> Rules:
    """The rules of one replies file; ConfigError naming the file and field if bad."""
    try:
        data = _File.model_validate(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML ({exc})") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{origin}: {where}: {first['msg']}") from exc
    cited = [
        *(w.source for w in [*data.opt_out, *data.start, *data.help]),
        data.message_words.source,
        data.promotional.source,
        *(p.source for p in [*data.exceptions, *data.revocation, *data.wrong_number]),
        *(p.source for p in data.booking),
    ]
    unknown = sorted(set(cited) - set(data.sources))
    if unknown:
        raise ConfigError(f"{origin}: source {unknown[0]!r} is not listed under sources")
    opt_out = _words(data.opt_out)
    return Rules(
        opt_out=opt_out,
        start=_words(data.start),
        help=_words(data.help),
        opt_out_re=_any_word(opt_out),
        message_words_re=_any_word(_words([data.message_words])),
        exceptions=_any_pattern(data.exceptions),
        revocation=_any_pattern(data.revocation),
        wrong_number=_any_pattern(data.wrong_number),
        booking=_any_pattern(data.booking),
        promotional_re=_any_word(_words([data.promotional])),
        examples=tuple(data.examples),
    )


@functools.cache
def replies_rules() -> Rules:
    text = resources.files("campaigns").joinpath(_RESOURCE).read_text(encoding="utf-8")
    return parse_rules(text, REPLIES_FILE)
