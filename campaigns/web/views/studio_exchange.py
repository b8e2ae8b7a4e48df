"""Campaign definitions as YAML over the web: the console's downloads and upload, and
the API's export (campaigns.content.exchange does the work; the CLI has the same)."""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from campaigns.content import exchange
from campaigns.errors import InputError
from campaigns.web.context import services
from campaigns.web.security import require_role, signed_in_as
from campaigns.web.views import api
from campaigns.web.views import schemas as s
from campaigns.web.views.common import saved_upload
from campaigns.web.views.console import actor, bp, problems


def _download(text: str, filename: str) -> Response:
    return Response(
        text,
        mimetype="application/yaml",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get("/campaigns.yaml")
@require_role("viewer")
def campaigns_export() -> ResponseReturnValue:
    """Every current campaign, one YAML document each: `meridian campaigns import` reads it."""
    return _download(exchange.export_yaml(services()), "campaigns.yaml")


@bp.get("/campaigns/<name>.yaml")
@require_role("viewer")
def campaign_export(name: str) -> ResponseReturnValue:
    return _download(exchange.export_yaml(services(), name), f"{name}.yaml")


@bp.post("/campaigns/import")
@require_role("marketer")
def campaigns_import() -> ResponseReturnValue:
    """A YAML file of one or more campaigns, uploaded: all checked, then each saved."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Choose a YAML file to import.", "error")
        return redirect(url_for("console.campaign_yaml_new"))
    with saved_upload(upload.stream, "campaigns.yaml") as path:
        text = path.read_text(encoding="utf-8", errors="replace")
    try:
        applied = exchange.import_yaml(
            services(),
            text,
            actor=actor(),
            source=upload.filename,
            may_acknowledge=signed_in_as("admin"),
        )
    except InputError as exc:
        page = render_template(
            "console/campaign_form.html", text="", refused=exc.message, problems=problems(exc)
        )
        return page, 422
    flash(f"Imported {len(applied)} campaign(s): {', '.join(a.name for a in applied)}.", "ok")
    return redirect(url_for("console.campaigns"))


@api.bp.get("/export/campaigns")
@require_role("viewer")
def api_campaigns_export() -> ResponseReturnValue:
    svc = services()
    names = [d.name for d in exchange.export_definitions(svc)]
    reply = {"campaigns": names, "yaml": exchange.export_yaml(svc)}
    return api._reply(s.ExportedCampaigns.model_validate(reply))


@api.bp.get("/export/campaigns/<name>")
@require_role("viewer")
def api_campaign_export(name: str) -> ResponseReturnValue:
    reply = {"campaigns": [name], "yaml": exchange.export_yaml(services(), name)}
    return api._reply(s.ExportedCampaigns.model_validate(reply))
