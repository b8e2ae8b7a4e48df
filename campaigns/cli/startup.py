"""What every ``meridian`` command shares: its start-up (logging, and Services with
the workers' dispatcher, the installed one: campaigns.services.installed_dispatcher),
its error handling and its output.

Exit codes: 0 ok, 1 failure (the broker did not answer, a run did not finish),
2 bad input (the message names file, row, column or field).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape

from campaigns import logs
from campaigns.errors import ConfigError, InputError, MeridianError, NotFound
from campaigns.services import Services, installed_dispatcher
from campaigns.settings import Settings, load_settings

out = Console()
err = Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ACTOR = "cli"
log = logging.getLogger(__name__)


def _configure_logging() -> None:
    try:
        settings = load_settings()
    except ConfigError:  # the command itself reports it
        logs.configure("text", "WARNING")
        return
    logs.configure(settings.log_format, settings.log_level or "WARNING")


def handled(fn: Callable[P, R]) -> Callable[P, R]:
    """Map errors to exit codes and one message (JSON with ``--json``); close the services.

    Meridian's own errors say what was wrong; anything else is unexpected: its
    traceback goes to the log, scrubbed of values (campaigns.logs), under an error
    id, and the message names only the id.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        _configure_logging()
        as_json = bool(kwargs.get("as_json"))
        opened_before = len(_opened)
        try:
            return fn(*args, **kwargs)
        except (InputError, ConfigError, NotFound) as exc:
            _fail(exc, "error", as_json)
            raise typer.Exit(2) from None
        except MeridianError as exc:  # BrokerUnavailable among them
            _fail(exc, "failed", as_json)
            raise typer.Exit(1) from None
        except (typer.Exit, typer.Abort, click.exceptions.ClickException, KeyboardInterrupt):
            raise
        except Exception as exc:
            error_id = logs.report_unexpected(log, exc, f"meridian {_command_name()}")
            _fail(None, "failed", as_json, error_id=error_id)
            raise typer.Exit(1) from None
        finally:
            _close_services(opened_before)

    return wrapper


def _command_name() -> str:
    context = click.get_current_context(silent=True)
    return context.command_path.removeprefix("meridian ") if context else "command"


def _fail(
    exc: MeridianError | None, kind: str, as_json: bool, *, error_id: str | None = None
) -> None:
    message = logs.unexpected_message(error_id) if error_id else str(exc)
    if as_json:
        body: dict[str, Any] = {"error": message}
        if isinstance(exc, InputError):
            body = {"error": exc.message, "problems": [vars(p) for p in exc.problems]}
        if error_id:
            body["error_id"] = error_id
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
        return
    err.print(f"[red]{kind}:[/red] {escape(message)}", markup=True, highlight=False)


_opened: list[Services] = []


def plugged(settings: Settings) -> Services:
    """Services on ``settings`` with the workers' dispatcher plugged in: the one place a
    command reaches the workers' side."""
    return Services(settings, installed_dispatcher())


def services(*, migrated: bool = True) -> Services:
    """Services for this command, with the workers' dispatcher plugged in; ``handled``
    closes them (engine, transports) at its end. Unless ``migrated`` is False, a
    database not at the code's migration head is refused with what to run."""
    svc = plugged(load_settings())
    _opened.append(svc)
    if migrated:
        svc.db.require_schema()
    return svc


def _close_services(keep: int) -> None:
    """Close the services opened since there were ``keep``: their pooled connections."""
    while len(_opened) > keep:
        _opened.pop().close()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
