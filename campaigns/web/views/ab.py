"""A/B copy in the console: the variants section of the copy editor (add variant B
from the current copy, edit it, set the split, promote a winner, stop the test), and
each variant's figures on a run's page and in the API (campaigns.content.ab_copy,
campaigns.sending.ab_results).

The copy editor and the run page include ``_ab_variants.html`` / ``_run_variants.html``,
which ask ``ab_test_of`` and ``run_variants`` (template globals) for what to show.
"""

from __future__ import annotations

from typing import Any

from flask import flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from campaigns.content import ab_copy, catalogue
from campaigns.content.copy import Copy
from campaigns.errors import InputError, NotFound, Problem
from campaigns.sending import ab_results
from campaigns.services import Services
from campaigns.web.context import services
from campaigns.web.security import require_role
from campaigns.web.views import api
from campaigns.web.views.ab_schemas import RunVariants
from campaigns.web.views.console import actor, bp, problems
from campaigns.web.views.studio_copy import typed_copy

_MAX_FIELD = 20_000


@bp.app_template_global()
def ab_test_of(name: str) -> ab_copy.AbTest:
    return ab_copy.ab_test(services(), name)


@bp.app_template_global()
def run_variants(run_id: int) -> dict[str, Any] | None:
    return variant_figures(services(), run_id)


def variant_figures(svc: Services, run_id: int) -> dict[str, Any] | None:
    """A run's per-variant results, with the patients who clicked and who booked."""
    return ab_results.variant_results_engaged(svc, run_id)


@bp.post("/campaigns/<name>/copy/variants")
@require_role("marketer")
def variant_add(name: str) -> ResponseReturnValue:
    svc = services()
    try:
        version = ab_copy.add_variant(svc, name, actor=actor())
    except InputError as exc:
        flash(f"No variant added: {exc}", "error")
        return redirect(url_for("console.copy_editor", name=name))
    letter = str(version["variant"])
    flash(f"Variant {letter} added as a copy of the current copy: edit it, then set the split.")
    return redirect(url_for("console.variant_editor", name=name, letter=letter))


@bp.get("/campaigns/<name>/copy/variants/<letter>")
@require_role("viewer")
def variant_editor(name: str, letter: str) -> ResponseReturnValue:
    svc = services()
    test = ab_copy.ab_test(svc, name)
    found = test.variants.get(letter)
    if found is None:
        flash(f"Campaign {name} has no variant {letter} in play.", "error")
        return redirect(url_for("console.copy_editor", name=name))
    return _page(svc, name, letter, Copy.from_row(found), found)


@bp.post("/campaigns/<name>/copy/variants/<letter>")
@require_role("marketer")
def variant_save(name: str, letter: str) -> ResponseReturnValue:
    svc = services()
    typed = typed_copy()
    try:
        _check(typed)
        version, findings = ab_copy.save_variant(svc, name, letter, typed, actor=actor())
    except InputError as exc:
        # Nothing saved; what was typed stays in the form.
        found = ab_copy.ab_test(svc, name).variants.get(letter)
        return _page(svc, name, letter, typed, found, refused=exc, status=422)
    flash(f"Saved variant {letter} (version {version['number']}).", "ok")
    return _page(svc, name, letter, typed, version, findings=findings)


@bp.post("/campaigns/<name>/copy/split")
@require_role("marketer")
def variant_split(name: str) -> ResponseReturnValue:
    svc = services()
    raw = {k.removeprefix("split-"): v for k, v in request.form.items() if k.startswith("split-")}
    try:
        split = ab_copy.set_split(svc, name, raw, actor=actor())
    except InputError as exc:
        flash(f"Split not saved: {exc}", "error")
        typed: dict[str, Any] = {f"split-{k}": v for k, v in raw.items()}  # shown again
        return redirect(url_for("console.copy_editor", name=name, _anchor="ab", **typed))
    flash(f"Split saved: {' / '.join(f'{k} {v} %' for k, v in split.items())}.", "ok")
    return redirect(url_for("console.copy_editor", name=name))


@bp.post("/campaigns/<name>/copy/promote/<letter>")
@require_role("marketer")
def variant_promote(name: str, letter: str) -> ResponseReturnValue:
    svc = services()
    try:
        version = ab_copy.promote(svc, name, letter, actor=actor())
    except InputError as exc:
        flash(f"Not promoted: {exc}", "error")
        return redirect(request.referrer or url_for("console.copy_editor", name=name))
    flash(
        f"Variant {letter} promoted: it is version {version['number']} of the copy, and later "
        "occurrences send only it once an approver approves the change.",
        "ok",
    )
    return redirect(url_for("console.copy_editor", name=name))


@bp.post("/campaigns/<name>/copy/ab/stop")
@require_role("marketer")
def variant_stop(name: str) -> ResponseReturnValue:
    ab_copy.stop(services(), name, actor=actor())
    flash("A/B test stopped: everyone gets the copy (A) again, once approved.", "ok")
    return redirect(url_for("console.copy_editor", name=name))


@api.bp.get("/runs/<int:run_id>/variants")
@require_role("viewer")
def api_run_variants(run_id: int) -> ResponseReturnValue:
    svc = services()
    if svc.runs.get(run_id) is None:
        raise NotFound(f"no run {run_id}")
    reply = RunVariants.model_validate({"run_id": run_id, "ab": variant_figures(svc, run_id)})
    return jsonify(reply.model_dump(mode="json"))


def _check(copy: Copy) -> None:
    found = [
        Problem(label, f"longer than {_MAX_FIELD} characters; shorten it")
        for label, value in (("SMS", copy.sms), ("Subject", copy.subject), ("Body", copy.body))
        if len(value or "") > _MAX_FIELD
    ]
    if found:
        raise InputError("the variant was not saved", found)


def _page(
    svc: Services,
    name: str,
    letter: str,
    copy: Copy,
    version: dict[str, Any] | None,
    *,
    findings: list[dict[str, Any]] | None = None,
    refused: InputError | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    row, _ = catalogue.load_campaign(svc, name)
    page = render_template(
        "console/variant_editor.html",
        campaign=row,
        letter=letter,
        copy=copy,
        version=version,
        findings=findings,
        problems=problems(refused) if refused else None,
        refused=str(refused.message) if refused else None,
    )
    return page, status
