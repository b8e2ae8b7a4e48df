"""The Celery app, built from Meridian's settings (the worker's and beat's edge)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from celery import Celery, signals
from kombu.entity import Exchange, Queue

from campaigns import keys, logs
from campaigns.collector import freeze_before_fork
from campaigns.errors import ConfigError
from campaigns.services import Services
from campaigns.settings import Settings, load_settings
from tasks.dispatcher import INBOX_DIGEST, POLL_BOUNCES, PUMP, SWEEP, CeleryDispatcher
from tasks.liveness import QueueHeartbeat

_services: Services | None = None
_log = logging.getLogger(__name__)


def services() -> Services:
    """This process's Services, built on first use (after any fork)."""
    global _services
    if _services is None:
        _services = Services(load_settings(), dispatcher())
    return _services


def dispatcher() -> CeleryDispatcher:
    """This app's Dispatcher: the one the package installs as its "meridian.dispatchers"
    entry point, which the CLI and the web app plug into their Services."""
    return CeleryDispatcher(app)


def celery_config(settings: Settings) -> dict[str, Any]:
    return dict(
        broker_url=settings.redis_url,
        task_default_queue=keys.RUNS_QUEUE,
        # Declared, so a bare `celery -A tasks worker` consumes every queue and
        # `-Q send` (or any subset) still picks some out.
        task_queues=[_queue(name) for name in keys.QUEUES],
        task_create_missing_queues=False,
        task_routes={
            "meridian.runs.*": {"queue": keys.RUNS_QUEUE},
            "meridian.send.*": {"queue": keys.SEND_QUEUE},
            "meridian.maintenance.*": {"queue": keys.MAINTENANCE_QUEUE},
        },
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # Send tasks may run twice (a lost worker, a redelivery): the claim in the
        # ledger makes that harmless, so ack late and requeue on a lost worker.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # No task ever carries an ETA or countdown (future sends wait in the
        # meridian:due sorted set), so the visibility timeout only bounds how long
        # an unacked task of a dead worker waits before Redis hands it out again.
        # 10 minutes is longer than any batch runs (slices of a second at the
        # provider's rate), and the sweeper re-queues from the ledger well before
        # that, so nothing waits on it.
        broker_transport_options={"visibility_timeout": 600},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        # Task events, for Flower and `celery events`: the workers' (received,
        # started, succeeded...) and the senders' (task-sent).
        worker_send_task_events=True,
        task_send_sent_event=True,
        beat_scheduler="tasks.beat:MeridianScheduler",
        redbeat_redis_url=settings.redis_url,
        redbeat_key_prefix=keys.REDBEAT_PREFIX,
        # RedBeat's own client; no retry_period, because MeridianScheduler handles
        # a Redis that is away (a retrying client would stall the beat loop).
        redbeat_redis_options={"socket_timeout": 10, "socket_connect_timeout": 5},
        # A beat that dies is replaced by a standing-by one within this many seconds.
        redbeat_lock_timeout=10,
        beat_max_loop_interval=1,
        beat_schedule={
            "pump": {
                "task": PUMP,
                "schedule": 1.0,
                "options": {"expires": 5},
            },
            "sweep": {
                "task": SWEEP,
                "schedule": settings.sweep_interval_s,
                "options": {"expires": 2 * settings.sweep_interval_s},
            },
            **(
                {
                    "inbox-digest": {
                        "task": INBOX_DIGEST,
                        "schedule": settings.inbox_digest_interval_s,
                        "options": {"expires": settings.inbox_digest_interval_s},
                    }
                }
                if settings.inbox_digest_to
                else {}
            ),
            **(
                {
                    "poll-bounces": {
                        "task": POLL_BOUNCES,
                        "schedule": settings.bounce_imap_interval_s,
                        "options": {"expires": settings.bounce_imap_interval_s},
                    }
                }
                if settings.bounce_imap_url
                else {}
            ),
        },
        timezone="UTC",
        enable_utc=True,
    )


def _queue(name: str) -> Queue:
    # As Celery would create it: a direct exchange of the queue's name.
    return Queue(name, Exchange(name), routing_key=name)  # type: ignore[no-untyped-call]


class _SettingsConfig(Mapping[str, Any]):
    """Celery reads its configuration on first use, not at import: so does this."""

    def __init__(self, settings: Settings | None) -> None:
        self._settings = settings
        self._data: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._data is None:
            self._data = celery_config(self._settings or load_settings())
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


def create_app(settings: Settings | None = None) -> Celery:
    app = Celery(
        "meridian", include=["tasks.runs", "tasks.send", "tasks.maintenance", "tasks.bounces"]
    )
    app.config_from_object(_SettingsConfig(settings))
    app.steps["consumer"].add(QueueHeartbeat)
    return app


@signals.worker_before_create_process.connect
def _freeze(**_: Any) -> None:
    freeze_before_fork()


@signals.worker_process_init.connect
def _fresh_services(**_: Any) -> None:
    global _services
    _services = None


@signals.setup_logging.connect
def _configure_logging(**_: Any) -> None:
    """The worker's and beat's log lines: the same format as the web app's."""
    try:
        settings = load_settings()
    except ConfigError:
        logs.configure("text", "INFO")
        raise
    logs.configure(settings.log_format, settings.log_level or "INFO")


@signals.task_failure.connect
def _task_failed(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    """A task that raised: its scrubbed traceback under an error id, never its text."""
    if exception is not None:
        name = getattr(sender, "name", "a task")
        logs.report_unexpected(_log, exception, f"task {name}")


app = create_app()
