"""What every ``meridian`` command shares: its start-up (logging, and Services with
the workers' Celery dispatcher plugged in), its error handling and its output.

Exit codes: 0 ok, 1 failure (the broker did not answer, a run did not finish),
2 bad input (the message names file, row, column or field).
"""

from __future__ import annotations

import functools
import json
import logging.config
import sys
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from campaigns.errors import ConfigError, InputError, MeridianError, NotFound
from campaigns.services import Services
from campaigns.settings import load_settings
from tasks.app import dispatcher

out = Console()
err = Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ACTOR = "cli"


def _configure_logging() -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
            "handlers": {
                "err": {
                    "class": "logging.StreamHandler",
                    "formatter": "plain",
                    "stream": "ext://sys.stderr",
                }
            },
            "root": {"handlers": ["err"], "level": "WARNING"},
        }
    )


def handled(fn: Callable[P, R]) -> Callable[P, R]:
    """Map Meridian's errors to exit codes and a message on stderr; close the services."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        _configure_logging()
        opened_before = len(_opened)
        try:
            return fn(*args, **kwargs)
        except (InputError, ConfigError, NotFound) as exc:
            err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
            raise typer.Exit(2) from exc
        except MeridianError as exc:  # BrokerUnavailable among them
            err.print(f"[red]failed:[/red] {exc}", markup=True, highlight=False)
            raise typer.Exit(1) from exc
        finally:
            _close_services(opened_before)

    return wrapper


_opened: list[Services] = []


def services() -> Services:
    """Services for this command, with the workers' dispatcher plugged in; ``handled``
    closes them (engine, transports) at its end."""
    svc = Services(load_settings(), dispatcher())
    _opened.append(svc)
    return svc


def _close_services(keep: int) -> None:
    """Close the services opened since there were ``keep``: their pooled connections."""
    while len(_opened) > keep:
        _opened.pop().close()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
