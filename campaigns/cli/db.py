"""``meridian db``: the ledger database."""

from __future__ import annotations

import typer

from campaigns.cli.startup import handled, out, services

app = typer.Typer(no_args_is_help=True, help="The ledger database.")


@app.command("upgrade")
@handled
def db_upgrade() -> None:
    """Create or migrate the ledger's tables (Alembic)."""
    svc = services(migrated=False)
    svc.db.upgrade()
    out.print(f"database at revision head ({svc.db.backend})")
