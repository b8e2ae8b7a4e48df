"""A campaign's copy in the ledger: save, list, compare, restore, check as typed.

Every save is a new immutable version (campaigns.store.copies); a restore is a new
version copying an old one. Saving lints the new copy (catalogue.lint_definition)
and refuses copy that cannot be rendered, naming the part and the line; compliance
findings are shown, and judged again before anything is scheduled or sent.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jinja2 import TemplateSyntaxError, nodes

from campaigns.content import approval, sms
from campaigns.content.catalogue import lint_definition as lint
from campaigns.content.catalogue import (
    load_campaign,
    mark_acknowledged,
    sample_context,
)
from campaigns.content.copy import Copy, to_block
from campaigns.content.sandbox import render_bounded
from campaigns.domain.states import FREED_NAME_STATES, CampaignState
from campaigns.errors import InputError, NotFound

if TYPE_CHECKING:
    from campaigns.services import Services

STARTER = "cold-and-flu-season"  # the shipped copy a campaign can start from

# What a template can use (rendering.build_context), as staff insert it.
VARIABLES: dict[str, str] = {
    "patient.first_name": "The patient's first name (may be empty: the starter copy "
    'writes patient.first_name or "there")',
    "patient.last_name": "The patient's last name",
    "clinic.name": "The clinic's name (MERIDIAN_CLINIC_NAME)",
    "clinic.phone": "The clinic's phone number",
    "clinic.address": "The clinic's postal address",
    "campaign.name": "This campaign's name",
    "unsubscribe_url": "The patient's one-click unsubscribe link (email only)",
}
_PARTS_FOR_CHECK = {"sms": "sms", "subject": "email", "body": "email", "text": "email"}


@dataclass
class Saved:
    version: dict[str, Any]
    findings: list[dict[str, Any]] = field(default_factory=list)


def current_copy(svc: Services, name: str) -> dict[str, Any] | None:
    """The campaign's copy as a YAML ``copy:`` block, for export; None when the
    campaign's messages come from its ``templates:`` folder."""
    row = svc.copies.current(name)
    return None if row is None else to_block(Copy.from_row(row))


def _editable(svc: Services, name: str) -> tuple[dict[str, Any], Any]:
    """The campaign holding ``name``; InputError for a cancelled or archived one, whose
    name is free: saving it would make a new campaign of that name, not change it."""
    row, definition = load_campaign(svc, name)
    if row["status"] in FREED_NAME_STATES:
        raise InputError(
            f"campaign {row['name']} is {row['status']}: restore it first"
            if row["status"] == CampaignState.ARCHIVED
            else f"campaign {row['name']} is cancelled: clone it to write new copy"
        )
    return row, definition


def save_copy(svc: Services, name: str, copy: Copy, *, actor: str) -> Saved:
    """Lint ``copy`` and save it as the campaign's next version (even when unchanged:
    staff pressed save). InputError, nothing saved, when it cannot be rendered."""
    row, definition = _editable(svc, name)
    findings = lint(svc, definition, draft=copy)  # refuses what cannot render
    version = svc.copies.add(int(row["id"]), copy.to_columns(), author=actor)
    svc.campaigns.save(name, row["definition"], findings, actor=actor)
    approval.lapse_if_changed(svc, row, definition, actor=actor)  # new text: approve again
    return Saved(version, mark_acknowledged(definition, findings))


def restore_version(svc: Services, name: str, number: int, *, actor: str) -> Saved:
    """A new version with the text of version ``number``; audited as a restore."""
    row, definition = _editable(svc, name)
    old = svc.copies.by_number(name, number)
    if old is None:
        raise NotFound(f"campaign {name} has no version {number} of its copy")
    copy = Copy.from_row(old)
    findings = lint(svc, definition, draft=copy)
    version = svc.copies.add(int(row["id"]), copy.to_columns(), author=actor, restored_from=number)
    svc.campaigns.save(name, row["definition"], findings, actor=actor)
    approval.lapse_if_changed(svc, row, definition, actor=actor)
    return Saved(version, mark_acknowledged(definition, findings))


def version(svc: Services, name: str, number: int) -> dict[str, Any]:
    found = svc.copies.by_number(name, number)
    if found is None:
        raise NotFound(f"campaign {name} has no version {number} of its copy")
    return found


_COMPARED = (
    ("sms", "SMS"),
    ("email_subject", "Email subject"),
    ("email_format", "Email body format"),
    ("email_body", "Email body"),
    ("email_text", "Email text part"),
)


def compare_versions(svc: Services, name: str, old: int, new: int) -> list[dict[str, Any]]:
    """Each part of two versions side by side (difflib.HtmlDiff, changes in context):
    [{part, changed, table}], the table HTML-escaped by difflib itself."""
    a, b = version(svc, name, old), version(svc, name, new)
    differ = difflib.HtmlDiff(tabsize=4, wrapcolumn=70)
    out = []
    for column, title in _COMPARED:
        before = a[column] if a[column] is not None else "(generated from the HTML)"
        after = b[column] if b[column] is not None else "(generated from the HTML)"
        if column != "email_text":
            before, after = before or "", after or ""
        table = differ.make_table(
            before.splitlines(),
            after.splitlines(),
            fromdesc=f"version {old}",
            todesc=f"version {new}",
            context=True,
            numlines=2,
        )
        out.append({"part": title, "changed": before != after, "table": table})
    return out


def starter_copy(svc: Services, folder: str = STARTER) -> Copy:
    """The shipped copy of a starter folder, as copy staff can edit (HTML as written)."""
    try:
        read = {p: svc.renderer.source(folder, p) for p in _STARTER_PARTS}
    except InputError as exc:  # a part missing from the folder
        raise NotFound(f"no starter copy named {folder!r}") from exc
    return Copy(
        sms=read["sms.txt.j2"].strip(),
        subject=read["email.subject.j2"].strip(),
        body=read["email.html.j2"].strip(),
        body_format="html",
        text=read["email.txt.j2"].strip(),
    )


_STARTER_PARTS = ("sms.txt.j2", "email.subject.j2", "email.html.j2", "email.txt.j2")


def check_text(svc: Services, campaign: str, part: str, text: str) -> dict[str, Any]:
    """What the editor shows next to a field as staff type: syntax errors and unknown
    variables with their line (the text compiled in the sandbox), and for the SMS its
    encoding and segments, as written and as a sample patient would get it."""
    channel = _PARTS_FOR_CHECK.get(part)
    if channel is None:
        raise InputError(f"part: {part!r} is not one of {', '.join(_PARTS_FOR_CHECK)}")
    problems: list[dict[str, Any]] = []
    env = svc.renderer.env
    try:
        tree = env.parse(text)
    except TemplateSyntaxError as exc:
        problems.append({"line": exc.lineno, "message": f"syntax error: {exc.message}"})
        tree = None
    known = set(sample_context(svc, "email" if channel == "email" else "sms", campaign))
    if tree is not None:
        problems += _unknown_variables(tree, known, channel, set(env.globals))
    answer: dict[str, Any] = {"part": part, "problems": problems}
    if part == "sms":
        answer["segments"] = sms.count_segments(text, svc.settings.public_url).to_dict()
        if tree is not None and not problems:
            context = sample_context(svc, "sms", campaign)
            try:
                sample = render_bounded(env.from_string(text), context).strip()
            except Exception as exc:
                problems.append({"line": None, "message": f"cannot render: {exc}"})
            else:
                if svc.settings.sms_smart_encoding:
                    sample = sms.smart_encode(sample)
                answer["sample"] = sample
                answer["sample_segments"] = sms.count_segments(
                    sample, svc.settings.public_url
                ).to_dict()
    return answer


def _unknown_variables(
    tree: nodes.Template, known: set[str], channel: str, globals_: set[str]
) -> list[dict[str, Any]]:
    """Names the context lacks, and fields of patient, clinic and campaign it lacks."""
    declared = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    fields = {
        "patient": {"first_name", "last_name"},
        "clinic": {"name", "address", "phone"},
        "campaign": {"name"},
    }
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    for node in tree.find_all(nodes.Name):
        if node.ctx != "load" or node.name in declared or node.name in seen:
            continue
        if node.name not in known and node.name not in globals_ and node.name != "loop":
            seen.add(node.name)
            hint = " (email only)" if node.name == "unsubscribe_url" and channel == "sms" else ""
            found.append({"line": node.lineno, "message": f"unknown variable: {node.name}{hint}"})
    for get in tree.find_all(nodes.Getattr):
        target = get.node
        if (
            isinstance(target, nodes.Name)
            and target.name in fields
            and get.attr not in fields[target.name]
            and f"{target.name}.{get.attr}" not in seen
        ):
            seen.add(f"{target.name}.{get.attr}")
            offered = ", ".join(sorted(f"{target.name}.{f}" for f in fields[target.name]))
            found.append(
                {
                    "line": get.lineno,
                    "message": f"unknown variable: {target.name}.{get.attr} (there is {offered})",
                }
            )
    return sorted(found, key=lambda p: p["line"] or 0)
