"""The copy editor: a campaign's SMS and email written in the browser, saved as
versions in the ledger, compared and restored (campaigns.content.copybook).

/campaigns/<name>/copy shows the newest version in the editor, a sample patient's
messages, its lint findings and the list of versions; the editor checks each field
as staff type through /campaigns/<name>/copy/check (JSON: problems with their line,
SMS segments as written and for a sample patient).
"""

from __future__ import annotations

from typing import Any

from flask import flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from campaigns.content import catalogue, copybook
from campaigns.content.copy import BodyFormat, Copy, templates_key
from campaigns.content.links import short_length
from campaigns.content.rendering import Rendered
from campaigns.errors import InputError, MeridianError, NotFound, Problem
from campaigns.services import Services
from campaigns.web.context import services
from campaigns.web.security import require_role
from campaigns.web.views.console import actor, bp, problems

_MAX_FIELD = 20_000  # characters: far beyond any message, short of abuse


@bp.get("/campaigns/<name>/copy")
@require_role("viewer")
def copy_editor(name: str) -> ResponseReturnValue:
    svc = services()
    _, definition = catalogue.load_campaign(svc, name)  # 404 first
    current = svc.copies.current(name)
    copy = Copy.from_row(current) if current else _folder_copy(svc, definition.templates)
    return _page(svc, name, copy, current=current)


def _folder_copy(svc: Services, folder: str) -> Copy | None:
    """What the campaign sends today from its templates folder, to edit into a version."""
    try:
        return copybook.starter_copy(svc, folder)
    except (NotFound, OSError):
        return None


@bp.post("/campaigns/<name>/copy")
@require_role("marketer")
def copy_save(name: str) -> ResponseReturnValue:
    svc = services()
    catalogue.load_campaign(svc, name)
    try:
        copy = _copy_from_form()
        saved = copybook.save_copy(svc, name, copy, actor=actor())
    except InputError as exc:
        # Nothing saved; everything typed stays in the form.
        return _page(
            svc, name, typed_copy(), current=svc.copies.current(name), refused=exc, status=422
        )
    flash(f"Saved version {saved.version['number']} of the copy.", "ok")
    return _page(svc, name, copy, current=saved.version, findings=saved.findings)


@bp.post("/campaigns/<name>/copy/starter")
@require_role("marketer")
def copy_starter(name: str) -> ResponseReturnValue:
    svc = services()
    catalogue.load_campaign(svc, name)
    copy = copybook.starter_copy(svc)
    try:
        saved = copybook.save_copy(svc, name, copy, actor=actor())
    except InputError as exc:
        return _page(svc, name, copy, current=None, refused=exc, status=422)
    flash(
        f"Version {saved.version['number']}: the starter library's "
        f"{copybook.STARTER} copy, ready to edit.",
        "ok",
    )
    return _page(svc, name, copy, current=saved.version, findings=saved.findings)


@bp.post("/campaigns/<name>/copy/restore/<int:number>")
@require_role("marketer")
def copy_restore(name: str, number: int) -> ResponseReturnValue:
    svc = services()
    try:
        saved = copybook.restore_version(svc, name, number, actor=actor())
    except InputError as exc:
        flash(f"Version {number} was not restored: {exc}", "error")
        return redirect(url_for("console.copy_editor", name=name))
    flash(f"Restored version {number} as version {saved.version['number']}.", "ok")
    copy = Copy.from_row(saved.version)
    return _page(svc, name, copy, current=saved.version, findings=saved.findings)


@bp.get("/campaigns/<name>/copy/compare")
@require_role("viewer")
def copy_compare(name: str) -> ResponseReturnValue:
    svc = services()
    catalogue.load_campaign(svc, name)
    old = request.args.get("old", type=int)
    new = request.args.get("new", type=int)
    if old is None or new is None:
        flash("Compare: choose two versions.", "error")
        return redirect(url_for("console.copy_editor", name=name))
    parts = copybook.compare_versions(svc, name, old, new)
    return render_template("console/copy_compare.html", name=name, old=old, new=new, parts=parts)


@bp.post("/campaigns/<name>/copy/check")
@require_role("marketer")
def copy_check(name: str) -> ResponseReturnValue:
    svc = services()
    catalogue.load_campaign(svc, name)
    data = request.get_json(silent=True) or {}
    part, text = data.get("part"), data.get("text")
    if not isinstance(part, str) or not isinstance(text, str):
        return jsonify({"error": "send JSON with 'part' and 'text'"}), 400
    try:
        return jsonify(copybook.check_text(svc, name, part, text[:_MAX_FIELD]))
    except InputError as exc:
        return jsonify({"error": str(exc)}), 400


def typed_copy() -> Copy:
    """What the form holds, unchecked: shown again when a save is refused."""
    form = request.form
    fmt: BodyFormat = "html" if form.get("body_format") == "html" else "markdown"
    return Copy(
        sms=form.get("sms", ""),
        subject=form.get("subject", ""),
        body=form.get("body", ""),
        body_format=fmt,
        text=form.get("text", "") if form.get("text_by_hand") else None,
    )


def _copy_from_form() -> Copy:
    form = request.form
    found = [
        Problem(label, f"longer than {_MAX_FIELD} characters; shorten it")
        for field, label in (("sms", "SMS"), ("subject", "Subject"), ("body", "Body"))
        if len(form.get(field, "")) > _MAX_FIELD
    ]
    if form.get("body_format") not in ("markdown", "html"):
        found.append(Problem("Body format", "choose Markdown or HTML"))
    if form.get("text_by_hand") and not form.get("text", "").strip():
        found.append(
            Problem("Text part", "empty: write it, or untick 'write the text part by hand'")
        )
    if found:
        raise InputError("the copy was not saved", found)
    return typed_copy()


def _page(
    svc: Services,
    name: str,
    copy: Copy | None,
    *,
    current: dict[str, Any] | None,
    findings: list[dict[str, Any]] | None = None,
    refused: InputError | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    row, definition = catalogue.load_campaign(svc, name)
    if findings is None and current is not None and refused is None:
        findings = catalogue.mark_acknowledged(definition, list(row["findings"] or []))
    page = render_template(
        "console/copy_editor.html",
        campaign=row,
        definition=definition,
        copy=copy,
        current=current,
        versions=svc.copies.of_campaign(name),
        variables=copybook.VARIABLES,
        findings=findings,
        sample=_sample(svc, definition) if current is not None and refused is None else {},
        problems=problems(refused) if refused else None,
        refused=str(refused.message) if refused else None,
        starter=copybook.STARTER,
        public_url=svc.settings.public_url.rstrip("/"),
        short_link=short_length(svc.settings.public_url),
    )
    return page, status


def _sample(svc: Services, definition: Any) -> dict[str, Rendered]:
    """Each channel's message for the sample patient, from the copy as saved now."""
    key = templates_key(svc, definition)
    out = {}
    for channel in definition.channels:
        try:
            out[channel] = svc.renderer.render(
                key, channel, catalogue.sample_context(svc, channel, definition.name)
            )
        except MeridianError:
            continue  # the findings say why
    return out
