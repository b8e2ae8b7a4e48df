"""``meridian db``: the ledger database."""

from __future__ import annotations

import typer

from campaigns.cli.startup import handled, out, services
from campaigns.content.review import REVIEW_REVISION, approve_scheduled_before_review

app = typer.Typer(no_args_is_help=True, help="The ledger database.")


@app.command("upgrade")
@handled
def db_upgrade() -> None:
    """Create or migrate the ledger's tables (Alembic)."""
    svc = services(migrated=False)
    before, _ = svc.db.revisions()
    svc.db.upgrade()
    out.print(f"database at revision head ({svc.db.backend})")
    if before is not None and before < REVIEW_REVISION:
        for sentence in approve_scheduled_before_review(svc):
            out.print(sentence)
