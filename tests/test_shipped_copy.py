"""The cold-and-flu-season copy Meridian ships: it fits, it complies, it claims nothing.

Rendered with plain Jinja2 rather than campaigns.content.rendering, so the copy is checked on
its own terms, under both whitespace settings a renderer might use.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from campaigns.content.compliance import lint_source
from campaigns.content.sms import count_segments

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
FOLDER = "cold-and-flu-season"
CAMPAIGN_FILE = ROOT / "examples" / "campaigns" / f"{FOLDER}.yaml"

CLINIC = {
    "name": "Harbor Acupuncture & Wellness",
    "address": "12 Harbor Street, Suite 3\nBoston, MA 02110",
    "phone": "(617) 555-0142",
}
UNSUBSCRIBE_URL = "https://meridian.example.org/unsubscribe/eyJwIjo0Mn0.sig?c=7&ch=email"
LONG_FIRST_NAME = "Maximilienne"  # 12 characters, the longest in the synthetic list

# The article's claims (seed/cold-and-flu-article.txt) and their near relatives. Each
# is matched from the start of a word, so "heal" catches "healing" but "health" is
# spared; "cure" catches "cures" but not "secure".
FORBIDDEN = {
    "boost": r"\bboost",
    "immune cells": r"\bimmune[\s-]+cells?\b",
    "immune system": r"\bimmune[\s-]+system",
    "immunity": r"\bimmunity\b",
    "prevent": r"\bprevent",
    "cure": r"\bcur(?:e[sd]?|ing|ative)\b",
    "treats": r"\btreats\b",
    "heal": r"\bheal(?!th)",
    "T-cells": r"\bt[\s-]?cells?\b",
    "interferon": r"\binterferon",
    "virus": r"\bvir(?:us|al)",
    "anti-cancer": r"\b(?:anti-?)?cancer",
    "covid": r"\bcovid|\bcoronavirus",
    "fights infection": r"\bfight\w*\s+(?:\w+\s+)?(?:infection|illness|disease)",
}
ARTICLE_SENTENCES = [
    "Acupuncture boosts the number of immune cells in your body",
    "including red blood cells, white blood cells, and T-cells",
    "Interferon levels, one of the immune system's messenger hormones, may rise",
    "a protein that prevents the virus from replicating",
    "Acupuncture is supposed to hasten the healing process",
    "It also has anti-inflammatory properties and improves anti-cancer properties",
    "the immune system's capacity to fight illness",
]


def _environment(whitespace: str) -> SandboxedEnvironment:
    # "html.j2" too: select_autoescape(["html"]) alone matches names ending ".html",
    # and would leave email.html.j2 unescaped.
    trim = whitespace == "trimmed"
    return SandboxedEnvironment(
        undefined=StrictUndefined,
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html", "html.j2"]),
        trim_blocks=trim,
        lstrip_blocks=trim,
    )


@pytest.fixture(params=["plain", "trimmed"])
def env(request: pytest.FixtureRequest) -> SandboxedEnvironment:
    return _environment(request.param)


def _context(first_name: str | None = LONG_FIRST_NAME, *, email: bool) -> dict[str, Any]:
    context: dict[str, Any] = {
        "patient": {"first_name": first_name, "last_name": "O'Brien"},
        "clinic": CLINIC,
        "campaign": {"name": FOLDER},
    }
    if email:
        context["unsubscribe_url"] = UNSUBSCRIBE_URL
    return context


def _render(env: SandboxedEnvironment, part: str, context: dict[str, Any]) -> str:
    return env.get_template(f"{FOLDER}/{part}").render(context)


def _visible_text(markup: str) -> str:
    body = re.sub(r"(?is)<head>.*?</head>", " ", markup)
    body = re.sub(r"(?i)<br\s*/?>|</?(?:p|td|tr|table|div)\b[^>]*>", " ", body)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", body)).split())


def _address_lines() -> list[str]:
    return CLINIC["address"].splitlines()


def _shipped_sources() -> list[Path]:
    return sorted([*(TEMPLATES / FOLDER).glob("*.j2"), *(TEMPLATES / "_layouts").glob("*.j2")])


@pytest.mark.parametrize("first_name", [LONG_FIRST_NAME, None, ""])
def test_the_sms_is_one_gsm7_segment(env: SandboxedEnvironment, first_name: str | None) -> None:
    sms = _render(env, "sms.txt.j2", _context(first_name, email=False))
    info = count_segments(sms)
    assert len(sms) <= 160, sms
    assert (info.encoding, info.segments) == ("GSM-7", 1), info


def test_the_sms_names_the_clinic_and_says_how_to_opt_out(env: SandboxedEnvironment) -> None:
    sms = _render(env, "sms.txt.j2", _context(email=False))
    assert CLINIC["name"] in sms
    assert "Reply STOP to opt out" in sms
    assert sms == sms.strip(), "no stray whitespace or trailing newline"


def test_the_sms_greets_a_patient_without_a_first_name(env: SandboxedEnvironment) -> None:
    assert "Hi there," in _render(env, "sms.txt.j2", _context(None, email=False))


def test_the_sms_needs_no_unsubscribe_url(env: SandboxedEnvironment) -> None:
    # StrictUndefined would raise if the SMS reached for the email-only variable.
    source = (TEMPLATES / FOLDER / "sms.txt.j2").read_text(encoding="utf-8")
    assert "unsubscribe_url" not in source
    _render(env, "sms.txt.j2", _context(email=False))


def test_the_subject_is_one_short_line(env: SandboxedEnvironment) -> None:
    subject = _render(env, "email.subject.j2", _context(email=True)).strip()
    assert "\n" not in subject
    assert CLINIC["name"] in subject
    assert len(subject) <= 90


def test_the_text_part_carries_the_address_and_unsubscribe_link(
    env: SandboxedEnvironment,
) -> None:
    text = _render(env, "email.txt.j2", _context(email=True))
    assert text.startswith(f"Hi {LONG_FIRST_NAME},")
    for line in [CLINIC["name"], *_address_lines(), CLINIC["phone"]]:
        assert f"\n{line}\n" in text, line
    assert UNSUBSCRIBE_URL in text
    assert "receiving this email because you are a patient" in " ".join(text.split())


def test_the_html_part_carries_the_address_and_unsubscribe_link(
    env: SandboxedEnvironment,
) -> None:
    markup = _render(env, "email.html.j2", _context(email=True))
    for line in _address_lines():
        assert f"{html.escape(line)}<br>" in markup, line
    assert f'href="{html.escape(UNSUBSCRIBE_URL)}"' in markup
    assert "Unsubscribe" in _visible_text(markup)
    assert "receiving this email because you are a patient" in _visible_text(markup)


def test_the_html_part_escapes_what_it_is_given(env: SandboxedEnvironment) -> None:
    markup = _render(env, "email.html.j2", _context("<b>Ann</b>", email=True))
    assert "<b>Ann</b>" not in markup
    assert "&lt;b&gt;Ann&lt;/b&gt;" in markup
    assert "Harbor Acupuncture &amp; Wellness" in markup


def test_the_html_part_loads_nothing_from_elsewhere(env: SandboxedEnvironment) -> None:
    markup = _render(env, "email.html.j2", _context(email=True)).lower()
    for needle in ("<img", "src=", "<script", "<link", "url(", "@import", "<iframe"):
        assert needle not in markup, needle
    assert markup.startswith("<!doctype html>")
    assert '<html lang="en">' in markup


def test_the_html_and_text_parts_say_the_same_thing(env: SandboxedEnvironment) -> None:
    text = _render(env, "email.txt.j2", _context(email=True))
    visible = _visible_text(_render(env, "email.html.j2", _context(email=True)))
    message = text.split("\n---")[0]
    for paragraph in message.split("\n\n"):
        assert " ".join(paragraph.split()) in visible, paragraph


@pytest.mark.parametrize("path", _shipped_sources(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_shipped_template_makes_none_of_the_articles_claims(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    found = [name for name, pattern in FORBIDDEN.items() if re.search(pattern, source, re.I)]
    assert found == []


@pytest.mark.parametrize("sentence", ARTICLE_SENTENCES)
def test_the_forbidden_list_catches_the_articles_claims(sentence: str) -> None:
    assert any(re.search(pattern, sentence, re.I) for pattern in FORBIDDEN.values())


def test_the_forbidden_list_spares_ordinary_words() -> None:
    ordinary = "Your health matters; book a secure, relaxing visit. Treat yourself."
    assert [n for n, p in FORBIDDEN.items() if re.search(p, ordinary, re.I)] == []


def test_the_campaign_file_points_at_these_templates() -> None:
    campaign = yaml.safe_load(CAMPAIGN_FILE.read_text(encoding="utf-8"))
    assert campaign["name"] == CAMPAIGN_FILE.stem == FOLDER
    assert campaign["templates"] == FOLDER
    assert set(campaign["channels"]) == {"sms", "email"}
    for part in ("sms.txt.j2", "email.subject.j2", "email.html.j2", "email.txt.j2"):
        assert (TEMPLATES / FOLDER / part).is_file(), part


def test_the_campaign_file_acknowledges_only_the_seasons_name_sentence_by_sentence() -> None:
    campaign = yaml.safe_load(CAMPAIGN_FILE.read_text(encoding="utf-8"))
    acknowledged = campaign["compliance"]["acknowledged"]
    assert {(a["rule"], a["phrase"]) for a in acknowledged} == {("names-influenza", "flu")}
    for ack in acknowledged:
        assert "cold and flu season" in ack["sentence"].casefold()
        assert ack["reason"] and ack["by"]
        folder, _, part = ack["template"].partition("/")
        assert folder == FOLDER
        line = (TEMPLATES / FOLDER / part).read_text(encoding="utf-8").splitlines()[ack["line"] - 1]
        assert " ".join(ack["sentence"].split()) in " ".join(line.split())


@pytest.mark.parametrize("path", _shipped_sources(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_lint_finds_nothing_in_the_shipped_copy_but_the_seasons_name(path: Path) -> None:
    channel = "sms" if path.name.startswith("sms") else "email"
    findings = lint_source(channel, path.name, path.read_text(encoding="utf-8"))
    assert [
        (f.rule, f.phrase)
        for f in findings
        if "cold and flu season" not in str(f.sentence).casefold()
    ] == []
    assert {f.phrase for f in findings} <= {"flu"}
