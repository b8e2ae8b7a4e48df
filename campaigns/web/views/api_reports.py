"""The API's view of what providers reported on a run: failures with their codes in
plain words, and the bounces, complaints and SMS error codes with what each decided."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from campaigns.sending.results import run_results
from campaigns.web.context import services
from campaigns.web.security import require_role
from campaigns.web.views import schemas as s
from campaigns.web.views.api import _reply, bp


@bp.get("/runs/<int:run_id>/failures")
@require_role("viewer")
def run_failures(run_id: int) -> ResponseReturnValue:
    svc = services()
    found = run_results(svc, run_id)  # NotFound (404) first
    return _reply(
        s.RunFailures.model_validate(
            {
                "run_id": run_id,
                "failures": found["failures"],
                "reports": [
                    {
                        "delivery_id": r.delivery_id,
                        "channel": r.channel,
                        "kind": r.kind,
                        "status": r.status,
                        "source": r.source,
                        "decision": r.decision,
                        "at": r.at.isoformat(),
                    }
                    for r in svc.delivery_reports.for_run(run_id)
                ],
            }
        )
    )
