"""A campaign's copy as staff write it, and the Jinja templates it becomes.

Staff write an SMS, an email subject and an email body in Markdown or in HTML, and
optionally the email's text part by hand. ``compile_templates`` turns that into the
same four parts a templates folder holds (``rendering.PARTS``), so one renderer,
one lint and one send path serve both:

- Markdown is converted with markdown-it-py (raw HTML off) and the result cleaned
  with nh3; Jinja tags (``{{ }}``, ``{% %}``, ``{# #}``) are held aside while it is,
  so neither touches them. The body is rendered into the shipped layout
  (``_layouts/email.html.j2``), as is an HTML body that does not extend a layout.
- With no text part written, the text is generated per message from the rendered
  HTML body with html2text, inside the shipped text layout (its footer: address,
  why, unsubscribe).

The same block is a campaign YAML's ``copy:`` (``to_block`` / ``from_block``).
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import html2text

from campaigns.errors import InputError, Problem

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

    from campaigns.content.definitions import CampaignDefinition
    from campaigns.services import Services

BodyFormat = Literal["markdown", "html"]
FORMATS: tuple[BodyFormat, ...] = ("markdown", "html")

# The fragment the email's HTML and generated text are made from, when there is one.
BODY_PART = "email.body.html.j2"
# The context name the generated text part is handed to its layout under.
GENERATED_TEXT = "generated_text"
# The name findings and errors give a ledger template, whatever its version, so an
# acknowledgement outlives edits elsewhere in the copy (as it does in a folder).
LABEL = "@copy"

_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)


@functools.cache
def _markdown() -> MarkdownIt:
    # markdown-it and nh3 are loaded when a Markdown copy is first compiled, not by
    # every worker process that imports this module to render (a few MB each).
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


@dataclass(frozen=True)
class Copy:
    """What staff wrote. ``text`` None: the email's text part is generated."""

    sms: str | None = None
    subject: str | None = None
    body: str | None = None
    body_format: BodyFormat = "markdown"
    text: str | None = None

    def to_columns(self) -> dict[str, str | None]:
        """The ledger's columns (campaigns.store.copies.TEXT_COLUMNS)."""
        return {
            "sms": self.sms,
            "email_subject": self.subject,
            "email_body": self.body,
            "email_format": self.body_format,
            "email_text": self.text,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Copy:
        fmt = row.get("email_format") or "markdown"
        return cls(
            sms=row.get("sms"),
            subject=row.get("email_subject"),
            body=row.get("email_body"),
            body_format="html" if fmt == "html" else "markdown",
            text=row.get("email_text"),
        )

    def digest(self) -> str:
        """Identifies the text exactly: equal digests, equal copy."""
        return hashlib.sha256(repr(sorted(asdict(self).items())).encode()).hexdigest()


def ledger_key(version_id: int) -> str:
    """The renderer's key of one version of copy in the ledger."""
    return f"@{version_id}"


def templates_key(svc: Services, definition: CampaignDefinition) -> str:
    """Where the campaign's messages come from now: its newest copy in the ledger
    (``@<version id>``), or its ``templates:`` folder when it has none. Give it to
    ``svc.renderer.source`` / ``render`` to see the text that would be sent."""
    current = svc.copies.current(definition.name)
    return definition.templates if current is None else ledger_key(int(current["id"]))


def version_of(key: str) -> int | None:
    """The version id a ledger key names; None for a folder or a draft."""
    return int(key[1:]) if key.startswith("@") and key[1:].isdigit() else None


def draft_key(copy: Copy) -> str:
    """The renderer's key of copy not saved yet (named by its text: never stale)."""
    return f"@draft-{copy.digest()[:16]}"


@dataclass(frozen=True)
class Templates:
    """A copy as Jinja sources by part name; ``text_from`` names the part whose
    rendered HTML the text part is generated from (None: written by hand)."""

    sources: dict[str, str] = field(default_factory=dict)
    text_from: str | None = None


def compile_templates(copy: Copy) -> Templates:
    """The Jinja sources of each part, ready for the renderer's loader. A body fragment
    stands in ``email.html.j2`` itself, from its first line, so that the lint and
    ``Renderer.source`` see the words that are sent, on the lines they are written on."""
    sources = {"sms.txt.j2": copy.sms or "", "email.subject.j2": copy.subject or ""}
    body = copy.body or ""
    if copy.body_format == "html" and "{% extends" in body:
        sources["email.html.j2"] = body  # a whole template, layout chosen by its author
        fragment = None
    else:
        fragment = markdown_to_html(body) if copy.body_format == "markdown" else body
        sources[BODY_PART] = fragment
        sources["email.html.j2"] = (
            '{% extends "_layouts/email.html.j2" %}{% block body %}'
            + fragment
            + "\n{% endblock %}\n"
        )
    if copy.text is not None:
        sources["email.txt.j2"] = copy.text
        return Templates(sources, None)
    if fragment is None:
        sources["email.txt.j2"] = f"{{{{ {GENERATED_TEXT} }}}}"
        return Templates(sources, "email.html.j2")
    sources["email.txt.j2"] = (
        '{% extends "_layouts/email.txt.j2" %}\n'
        f"{{% block body %}}{{{{ {GENERATED_TEXT} }}}}{{% endblock %}}\n"
    )
    return Templates(sources, BODY_PART)


def markdown_to_html(markdown: str) -> str:
    """Markdown as safe HTML, its Jinja tags untouched, each block starting on the line
    it was written on where it can (so a finding's line points at the Markdown)."""
    held: list[str] = []

    def hold(match: re.Match[str]) -> str:
        held.append(match.group(0))
        return f"JINJAHELD{len(held) - 1}X"

    import nh3

    html = nh3.clean(_blocks_on_their_lines(_JINJA.sub(hold, markdown)), link_rel=None)
    return re.sub(r"JINJAHELD(\d+)X", lambda m: held[int(m.group(1))], html).rstrip()


def _blocks_on_their_lines(markdown: str) -> str:
    """markdown-it's HTML, one top-level block at a time, each padded down to the line
    its source starts on (blank lines between blocks mean nothing in HTML)."""
    env: dict[str, Any] = {}
    md = _markdown()
    tokens = md.parse(markdown, env)
    out: list[str] = []
    line, depth, start = 0, 0, 0
    for i, token in enumerate(tokens):
        depth += token.nesting
        if depth != 0:
            continue
        block = tokens[start : i + 1]
        start = i + 1
        html = md.renderer.render(block, md.options, env)
        html = re.sub(r"<(ul|ol)([^>]*)>\n", r"<\1\2>", html).replace("</li>\n</ul>", "</li></ul>")
        html = html.replace("</li>\n</ol>", "</li></ol>")
        first = block[0].map[0] if block[0].map else line
        if first > line:
            out.append("\n" * (first - line))
            line = first
        out.append(html)
        line += html.count("\n")
    return "".join(out)


def html_to_text(html: str) -> str:
    """The text part of an email from its HTML (html2text: links kept, images dropped)."""
    maker = html2text.HTML2Text()
    maker.body_width = 72
    maker.ignore_images = True
    maker.ignore_emphasis = True
    maker.unicode_snob = True
    return maker.handle(html).strip()


# the YAML block ---------------------------------------------------------------------


def to_block(copy: Copy) -> dict[str, Any]:
    """The ``copy:`` block of a campaign YAML: only what was written."""
    block: dict[str, Any] = {}
    if copy.sms is not None:
        block["sms"] = copy.sms
    email: dict[str, Any] = {}
    if copy.subject is not None:
        email["subject"] = copy.subject
    if copy.body is not None:
        email[copy.body_format] = copy.body
    if copy.text is not None:
        email["text"] = copy.text
    if email:
        block["email"] = email
    return block


def from_block(block: Any, source: str) -> Copy:
    """A ``copy:`` block as a Copy; InputError naming the field when it is not one."""
    where = f"{source}: copy"
    if not isinstance(block, dict):
        raise InputError(f"{where}: expected a mapping with 'sms' and/or 'email'")
    problems = [
        Problem(f"{where}.{k}", "unknown field; use 'sms' and 'email'")
        for k in block
        if k not in ("sms", "email")
    ]
    email = block.get("email") or {}
    if not isinstance(email, dict):
        raise InputError(f"{where}.email: expected a mapping of subject, markdown or html, text")
    problems += [
        Problem(f"{where}.email.{k}", "unknown field; use subject, markdown or html, text")
        for k in email
        if k not in ("subject", "markdown", "html", "text")
    ]
    if "markdown" in email and "html" in email:
        problems.append(Problem(f"{where}.email", "give the body once: 'markdown' or 'html'"))
    for name, value in [("sms", block.get("sms"))] + [(f"email.{k}", v) for k, v in email.items()]:
        if value is not None and not isinstance(value, str):
            problems.append(Problem(f"{where}.{name}", "expected text"))
    if problems:
        raise InputError(f"{where}: not a valid copy block", problems)
    fmt: BodyFormat = "html" if "html" in email else "markdown"
    return Copy(
        sms=block.get("sms"),
        subject=email.get("subject"),
        body=email.get(fmt),
        body_format=fmt,
        text=email.get("text"),
    )
