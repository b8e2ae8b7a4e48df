"""``meridian doctor [--json]``: what /readyz checks, plus the settings and the providers.

Settings (loaded as every entry point loads them, the production checks included);
database, migrations, Redis, a worker seen for each queue, a beat seen
(campaigns.sending.health); then one harmless request to each provider in use: a
Twilio account fetch, an SMTP NOOP. Exit 0 when every check passes, 1 otherwise.
No check prints a credential, a URL with one, or a patient's data.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from campaigns.cli.startup import plugged
from campaigns.errors import ConfigError, MeridianError
from campaigns.sending.health import Check, readiness
from campaigns.settings import Settings, load_settings
from campaigns.transports.probe import probe_smtp, probe_twilio


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Check settings, database, migrations, Redis, workers, beat and provider credentials."""
    checks = run_checks()
    ok = all(c.ok for c in checks)
    if as_json:
        body = {"ok": ok, "checks": [c.to_dict() for c in checks]}
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
    else:
        table = Table("check", "", "detail")
        for c in checks:
            table.add_row(c.name, "ok" if c.ok else "FAIL", c.detail)
        console = Console()
        console.print(table)
        console.print("all checks pass" if ok else "some checks fail", highlight=False)
    raise typer.Exit(0 if ok else 1)


def run_checks() -> list[Check]:
    try:
        settings = load_settings()
    except ConfigError as exc:
        return [Check("settings", False, str(exc))]
    checks = [
        Check(
            "settings",
            True,
            f"env {settings.env}, sms {settings.sms_transport}, "
            f"email {settings.email_transport}, database {_backend(settings)}",
        )
    ]
    svc = plugged(settings)
    try:
        checks += readiness(svc)
    finally:
        svc.close()
    checks.append(_provider("sms", settings.sms_transport, "twilio", probe_twilio, settings))
    checks.append(_provider("email", settings.email_transport, "smtp", probe_smtp, settings))
    return checks


def _provider(
    channel: str, kind: str, real: str, probe: Callable[[Settings], str], settings: Settings
) -> Check:
    name = f"provider:{channel}"
    if kind != real:
        return Check(name, True, f"{kind}: nothing is sent to a provider")
    try:
        return Check(name, True, f"{real}: {probe(settings)}")
    except MeridianError as exc:
        return Check(name, False, f"{real}: {exc}")


def _backend(settings: Settings) -> str:
    return settings.database_url.partition(":")[0].partition("+")[0]
