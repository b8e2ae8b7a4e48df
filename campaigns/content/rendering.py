"""Sandboxed Jinja2 rendering of the templates clinic staff edit.

A campaign's templates are found by a key. A folder's name: the files under
MERIDIAN_TEMPLATES_DIR as ``<folder>/sms.txt.j2``, ``email.subject.j2``,
``email.html.j2`` and ``email.txt.j2``. A key starting with ``@``: copy written in
the console, one immutable version of the ledger (``@<version id>``) or a draft not
saved yet, turned into the same parts by campaigns.content.copy; the shipped layouts
stay reachable to ``{% extends %}`` and ``{% include %}`` (a ChoiceLoader). A
version never changes, so its compiled templates are kept by key. They render in
Jinja2's SandboxedEnvironment (staff-written templates must not reach Python
internals) with StrictUndefined (a misspelt variable is an error, not a blank), and
HTML parts are autoescaped. Each process compiles a template once.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    nodes,
    select_autoescape,
)
from jinja2.exceptions import SecurityError

from campaigns.content.copy import GENERATED_TEXT, LABEL, Templates, html_to_text
from campaigns.content.sandbox import BoundedSandbox, TemplateLimitError, render_bounded
from campaigns.domain.models import Channel
from campaigns.errors import InputError, Problem

PARTS: dict[Channel, tuple[str, ...]] = {
    "sms": ("sms.txt.j2",),
    "email": ("email.subject.j2", "email.html.j2", "email.txt.j2"),
}


@dataclass(frozen=True)
class Rendered:
    """A rendered message. Holds PHI: never log it."""

    channel: Channel
    body: str  # SMS text, or the email's text part
    subject: str | None = None
    html: str | None = None
    unsubscribe_url: str | None = None  # in the email's headers too (RFC 8058)

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "body": self.body,
            "subject": self.subject,
            "html": self.html,
        }


@dataclass(frozen=True)
class Clinic:
    name: str
    address: str
    phone: str


# A ledger key's templates, or None when there is no such version.
CopySource = Callable[[str], Templates | None]


def is_copy_key(key: str) -> bool:
    """True for a key of copy from the ledger (or a draft), False for a folder."""
    return key.startswith("@")


class _CopyLoader(BaseLoader):
    """The parts of ledger copy, by ``<key>/<part>``; a folder's name is not its to load."""

    def __init__(self, templates_of: Callable[[str], Templates | None]) -> None:
        self.templates_of = templates_of

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        key, _, part = template.partition("/")
        found = self.templates_of(key) if is_copy_key(key) else None
        if found is None or part not in found.sources:
            raise TemplateNotFound(template)
        return found.sources[part], f"{LABEL}/{part}", lambda: True


class Renderer:
    """One per process: compiles each template once and renders many times."""

    def __init__(self, templates_dir: Path, copies: CopySource | None = None) -> None:
        self.templates_dir = templates_dir
        self._copies = copies
        self._copy_templates: dict[str, Templates | None] = {}
        self.env = BoundedSandbox(
            loader=ChoiceLoader(
                [_CopyLoader(self.templates_of), FileSystemLoader(str(templates_dir))]
            ),
            undefined=StrictUndefined,
            autoescape=select_autoescape(
                enabled_extensions=("html", "html.j2"), default_for_string=False
            ),
            auto_reload=False,
            cache_size=-1,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._compiled: dict[tuple[str, Channel], list[tuple[str, Template]]] = {}

    def templates_of(self, key: str) -> Templates | None:
        """The ledger copy's templates under ``key``, looked up once (a version never
        changes); None for a folder or a version that does not exist."""
        if not is_copy_key(key) or self._copies is None:
            return None
        if key not in self._copy_templates:
            self._copy_templates[key] = self._copies(key)
        return self._copy_templates[key]

    def with_draft(self, key: str, templates: Templates) -> Renderer:
        """A renderer that also knows ``templates`` under ``key``: copy being written,
        checked before it is saved. Throw it away after use."""
        copies = self._copies

        def lookup(wanted: str) -> Templates | None:
            if wanted == key:
                return templates
            return copies(wanted) if copies is not None else None

        return Renderer(self.templates_dir, lookup)

    def source(self, key: str, part: str) -> str:
        """The text of one part: the file, or the ledger copy's template (the Jinja
        source it is compiled from, Markdown already turned into HTML)."""
        if is_copy_key(key):
            found = self.templates_of(key)
            if found is None:
                raise InputError(f"templates {key}: no such version of the copy")
            return found.sources.get(part, "")
        path = self.templates_dir / key / part
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(
                f"templates/{key}: refused",
                [
                    Problem(
                        f"{key}/{part}",
                        "template not found: put the file back in the templates folder, "
                        "or choose another folder",
                    )
                ],
            ) from None

    def label(self, key: str, part: str) -> str:
        """The name findings give a part: ``<folder>/<part>`` or ``@copy/<part>``."""
        return f"{LABEL}/{part}" if is_copy_key(key) else f"{key}/{part}"

    def referenced_sources(self, key: str, part: str) -> dict[str, str]:
        """The text of every template the part extends, includes or imports, at any
        depth (the shipped layouts), by name; a missing one as "" (the lint says so)."""
        found: dict[str, str] = {}
        assert self.env.loader is not None
        todo, seen = [f"{key}/{part}"], set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            try:
                source, _, _ = self.env.loader.get_source(self.env, name)
            except TemplateNotFound:
                found[_label(name)] = ""
                continue
            if len(seen) > 1:
                found[_label(name)] = source
            try:
                tree = self.env.parse(source, name)
            except TemplateSyntaxError:
                continue
            todo.extend(n for n in meta.find_referenced_templates(tree) if n is not None)
        return found

    def clinic_fields(self, folder: str, part: str) -> list[tuple[str, int, str]]:
        """(template, line, field) for each ``clinic.<field>`` the part uses, in itself
        and in every template it extends, includes or imports. Call after ``check``."""
        found: list[tuple[str, int, str]] = []
        todo, seen = [f"{folder}/{part}"], set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            assert self.env.loader is not None
            source, _, _ = self.env.loader.get_source(self.env, name)
            tree = self.env.parse(source, name)
            for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
                field = _clinic_field(node)
                if field is not None:
                    found.append((_label(name), node.lineno, field))
            todo.extend(n for n in meta.find_referenced_templates(tree) if n is not None)
        return sorted(set(found))

    def render(self, folder: str, channel: Channel, context: dict[str, Any]) -> Rendered:
        key = (folder, channel)
        templates = self._compiled.get(key)
        if templates is None:
            # Looked up once: Jinja's own cache still costs a loader check per call.
            templates = [(p, self._compile(folder, p)) for p in PARTS[channel]]
            self._compiled[key] = templates
        parts = {}
        context = self._with_generated_text(folder, channel, context)
        for part, template in templates:
            try:
                parts[part] = render_bounded(template, context).strip()
            except _RENDER_ERRORS as exc:
                problem = _problem(exc, f"{folder}/{part}", self.templates_dir)
                raise InputError(f"templates/{_label(folder)}: refused", [problem]) from None
        if channel == "sms":
            return Rendered("sms", parts["sms.txt.j2"])
        return Rendered(
            "email",
            parts["email.txt.j2"],
            subject=parts["email.subject.j2"],
            html=parts["email.html.j2"],
        )

    def _with_generated_text(
        self, key: str, channel: Channel, context: dict[str, Any]
    ) -> dict[str, Any]:
        """The context, with the email's text part generated from its rendered HTML
        when the copy has none written by hand."""
        found = self.templates_of(key) if channel == "email" else None
        if found is None or found.text_from is None:
            return context
        html = render_bounded(self._compile(key, found.text_from), context)
        return {**context, GENERATED_TEXT: html_to_text(html)}

    def _compile(self, folder: str, part: str) -> Template:
        """One part, compiled; InputError naming file and line when it cannot be (a
        template edited on disk since the campaign was applied, or removed)."""
        try:
            return self.env.get_template(f"{folder}/{part}")
        except _RENDER_ERRORS as exc:
            problem = _problem(exc, f"{folder}/{part}", self.templates_dir)
            raise InputError(f"templates/{_label(folder)}: refused", [problem]) from None

    def check(
        self, folder: str, channels: list[Channel], samples: dict[Channel, dict[str, Any]]
    ) -> dict[Channel, Rendered]:
        """Compile and trial-render every part; refuse with template and line on error."""
        problems: list[Problem] = []
        out: dict[Channel, Rendered] = {}
        for channel in channels:
            before = len(problems)
            try:
                sample = self._with_generated_text(folder, channel, samples[channel])
            except _RENDER_ERRORS:
                sample = samples[channel]  # the HTML part's own error is reported below
            for part in PARTS[channel]:
                name = f"{folder}/{part}"
                try:
                    render_bounded(self.env.get_template(name), sample)
                except _RENDER_ERRORS as exc:
                    problems.append(_problem(exc, name, self.templates_dir))
            if len(problems) == before:
                out[channel] = self.render(folder, channel, samples[channel])
        if problems:
            raise InputError(f"templates/{_label(folder)}: refused", problems)
        return out


# What a staff-written template can raise while it renders: Jinja's errors, the
# sandbox's bounds, and Python's own limits (a range past the sandbox's, a macro or an
# include that recurses, a number too long to print, a division by zero).
_RENDER_ERRORS = (TemplateError, OverflowError, RecursionError, ArithmeticError, ValueError)


def _label(name: str) -> str:
    """A template's name as findings give it: ledger copy as ``@copy/<part>``."""
    key, sep, part = name.partition("/")
    if not is_copy_key(key):
        return name
    return f"{LABEL}/{part}" if sep else LABEL


def _problem(exc: BaseException, name: str, root: Path) -> Problem:
    """A render error as a Problem naming the template file and line."""
    file, line = _template_line(exc, name, root)
    name = _label(name)
    if isinstance(exc, TemplateNotFound):
        missing = exc.name if isinstance(exc.name, str) else ", ".join(map(str, exc.templates))
        missing = _label(missing)
        if line == "?" and missing == name:
            return Problem(name, f"template not found ({missing})")
        return Problem(f"{file}:{line}", f"includes or extends a missing template ({missing})")
    if isinstance(exc, TemplateSyntaxError):
        return Problem(f"{file}:{line}", f"syntax error: {exc.message}")
    if isinstance(exc, TemplateLimitError):
        return Problem(f"{file}:{line}", f"refused by the sandbox: {exc}")
    if isinstance(exc, SecurityError):
        return Problem(f"{file}:{line}", f"refused by the sandbox: {exc}")
    if isinstance(exc, UndefinedError):
        return Problem(f"{file}:{line}", f"unknown variable: {exc}")
    if isinstance(exc, RecursionError):
        return Problem(
            f"{file}:{line}",
            "refused: it recurses without end (a macro calling itself, or "
            "templates that include or extend each other)",
        )
    if isinstance(exc, TemplateError):
        return Problem(f"{file}:{line}", str(exc))
    return Problem(f"{file}:{line}", f"refused: {type(exc).__name__}: {exc}")


def _clinic_field(node: nodes.Node) -> str | None:
    """``field`` when the node reads ``clinic.field`` or ``clinic["field"]``."""
    target = getattr(node, "node", None)
    if not (isinstance(target, nodes.Name) and target.name == "clinic"):
        return None
    if isinstance(node, nodes.Getattr):
        return node.attr
    arg = getattr(node, "arg", None)
    if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
        return arg.value
    return None


def _template_line(exc: BaseException, name: str, root: Path) -> tuple[str, str]:
    """The template file and line a render error came from (Jinja rewrites frames)."""
    if isinstance(exc, TemplateSyntaxError) and exc.lineno:
        return _shown(exc.filename or str(root / name), root), str(exc.lineno)
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(".j2"):
            return _shown(frame.filename, root), str(frame.lineno)
    if is_copy_key(name):
        return _label(name), "?"
    return _shown(str(root / name), root), "?"


def _shown(file: str, root: Path) -> str:
    """A template's path as staff see it: under the templates folder, not the server's."""
    if file.startswith(LABEL):
        return file
    if is_copy_key(file):
        return _label(file)
    try:
        return str(Path(file).resolve().relative_to(root.resolve()))
    except ValueError:
        return Path(file).name


def build_context(
    *,
    first_name: str | None,
    last_name: str | None,
    clinic: Clinic,
    campaign: str,
    unsubscribe_url: str | None,
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "patient": {"first_name": first_name, "last_name": last_name},
        "clinic": {"name": clinic.name, "address": clinic.address, "phone": clinic.phone},
        "campaign": {"name": campaign},
    }
    if unsubscribe_url is not None:
        context["unsubscribe_url"] = unsubscribe_url
    return context
