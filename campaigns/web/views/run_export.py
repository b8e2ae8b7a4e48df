"""A run's message log and its results as CSV downloads from its page (staff only,
audited as an export; campaigns.sending.export writes them, formula-injection-safe)."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from campaigns.web.security import require_role
from campaigns.web.views.api_results import csv_download, results_download
from campaigns.web.views.console import actor, bp


@bp.get("/runs/<int:run_id>/export.csv")
@require_role("viewer")
def run_export(run_id: int) -> ResponseReturnValue:
    return csv_download(run_id, actor(), "console")


@bp.get("/runs/<int:run_id>/results.csv")
@require_role("viewer")
def run_results_export(run_id: int) -> ResponseReturnValue:
    return results_download(run_id, actor(), "console")
