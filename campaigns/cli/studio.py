"""``meridian campaigns export|import|clone|archive|restore``: campaigns as YAML files for
operators who keep them in git (campaigns.content.exchange), and the studio's copy
and archive (campaigns.sending.control)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from campaigns.cli.startup import ACTOR, JsonOpt, handled, out, print_json, services
from campaigns.content import exchange
from campaigns.sending import control


def register(group: typer.Typer) -> None:
    """Add the studio's commands to ``group`` (the ``campaigns`` group)."""

    @group.command("export")
    @handled
    def campaigns_export(
        name: Annotated[str | None, typer.Argument(help="One campaign; all when omitted.")] = None,
        out_dir: Annotated[
            Path | None,
            typer.Option("--out", help="Write <name>.yaml per campaign into this folder."),
        ] = None,
    ) -> None:
        """Write campaign definitions as YAML: to stdout (one document per campaign), or
        one file per campaign with --out. `campaigns import` reads either back."""
        svc = services()
        if out_dir is None:
            sys.stdout.write(exchange.export_yaml(svc, name))
            return
        for path in exchange.export_files(svc, out_dir, name):
            out.print(f"wrote {path}", highlight=False)

    @group.command("import")
    @handled
    def campaigns_import(
        path: Annotated[
            Path, typer.Argument(help="A YAML file (one or more documents) or a folder.")
        ],
        as_json: JsonOpt = False,
    ) -> None:
        """Create or update campaigns from YAML; every document is checked before any is saved."""
        applied = exchange.import_path(services(), path, actor=ACTOR)
        if as_json:
            print_json([{"id": a.campaign_id, "name": a.name} for a in applied])
            return
        for a in applied:
            open_claims = (
                f", {len(a.unacknowledged)} claim(s) to acknowledge" if a.unacknowledged else ""
            )
            out.print(
                f"campaign {a.name} imported (id {a.campaign_id}){open_claims}", highlight=False
            )

    @group.command("clone")
    @handled
    def campaigns_clone(name: str, new_name: str, as_json: JsonOpt = False) -> None:
        """Copy a campaign's definition into a new draft under NEW_NAME."""
        applied = control.clone(services(), name, new_name, actor=ACTOR)
        if as_json:
            print_json({"id": applied.campaign_id, "name": applied.name, "status": "draft"})
            return
        out.print(f"campaign {name} cloned as {applied.name} (id {applied.campaign_id}), a draft")

    @group.command("archive")
    @handled
    def campaigns_archive(name: str) -> None:
        """Hide a campaign from the list; it never starts until restored. Its name is free."""
        out.print(control.archive(services(), name, actor=ACTOR), highlight=False)

    @group.command("restore")
    @handled
    def campaigns_restore(
        campaign_id: Annotated[int, typer.Argument(help="The archived campaign's id.")],
    ) -> None:
        """Bring an archived campaign back, as a draft (`campaigns list --json` shows ids)."""
        out.print(control.restore(services(), campaign_id, actor=ACTOR), highlight=False)
