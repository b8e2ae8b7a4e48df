"""The one place where settings become live objects: database, Redis, transports.

Entry points (CLI, worker, web) build one ``Services`` from ``Settings`` and pass
it down; nothing reads the environment at import time. They also plug in the
``Dispatcher`` the core hands work to the workers through (tasks.dispatcher's, on
Celery); nothing else imports the workers' side.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cached_property
from importlib.metadata import entry_points

import redis

from campaigns.content.copy import Copy, Templates, compile_templates, version_of
from campaigns.content.links import LinkRewriter
from campaigns.content.rendering import Clinic, Renderer
from campaigns.domain.models import CHANNELS, Channel
from campaigns.domain.ports import Dispatcher, DueQueue, Limiter, Tally, utc_now
from campaigns.domain.transport import Transport
from campaigns.errors import ConfigError
from campaigns.people.tokens import UnsubscribeClaim, make_unsubscribe_token
from campaigns.sending.batches import DueBatches
from campaigns.sending.ratelimit import RateLimiter
from campaigns.sending.tally import RedisTally
from campaigns.settings import Settings
from campaigns.store.bookings import BookingRepository
from campaigns.store.campaigns import CampaignRepository
from campaigns.store.consent import ConsentRepository
from campaigns.store.copies import CopyRepository
from campaigns.store.db import Database
from campaigns.store.deliveries import DeliveryRepository
from campaigns.store.delivery_queries import DeliveryQueries
from campaigns.store.delivery_reports import DeliveryReportRepository
from campaigns.store.engagement import EngagementRepository
from campaigns.store.health import HealthRepository
from campaigns.store.inbound import InboundRepository
from campaigns.store.patients import PatientRepository
from campaigns.store.reports import ReportRepository
from campaigns.store.results import ResultsRepository
from campaigns.store.reviews import ReviewRepository
from campaigns.store.runs import RunRepository
from campaigns.store.staff import StaffRepository
from campaigns.store.suppression import SuppressionRepository
from campaigns.store.variants import VariantRepository

# The installed package names the workers' Dispatcher under this entry-point group
# (pyproject's [project.entry-points."meridian.dispatchers"]: tasks.app:dispatcher).
DISPATCHERS = "meridian.dispatchers"


def installed_dispatcher() -> Dispatcher:
    """The workers' Dispatcher, found through the installed package's entry point: the
    core declares the port and never imports the side that implements it. The CLI's
    and the web app's start-up plug it in."""
    found = entry_points(group=DISPATCHERS)
    if len(found) != 1:
        names = ", ".join(sorted(f"{p.name} = {p.value}" for p in found)) or "none"
        raise ConfigError(
            f"one dispatcher must be installed in the {DISPATCHERS!r} entry points, "
            f"found {names}: install Meridian (make install, or pip install -e .)"
        )
    (point,) = found
    make = point.load()
    dispatcher: Dispatcher = make()
    return dispatcher


class Services:
    """The composition root. ``due``, ``limiters`` and ``tally`` replace the Redis ones (the
    in-memory ones of campaigns.sending.stubs, for tests); a channel missing from
    ``limiters`` is not limited."""

    def __init__(
        self,
        settings: Settings,
        dispatcher: Dispatcher | None = None,
        *,
        due: DueQueue | None = None,
        limiters: Mapping[Channel, Limiter] | None = None,
        tally: Tally | None = None,
    ) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        # What a repository stamps on its own comes from this clock; runs and
        # deliveries take ``now`` from their callers, who decide with it too.
        self.patients = PatientRepository(self.db, self.now, settings.booking_window_days)
        self.consent = ConsentRepository(self.db, self.now)
        self.campaigns = CampaignRepository(self.db, self.now)
        self.copies = CopyRepository(self.db, self.now)
        self.variants = VariantRepository(self.db, self.now)
        self.reviews = ReviewRepository(self.db, self.now)
        self.runs = RunRepository(self.db)
        self.deliveries = DeliveryRepository(self.db)
        self.delivery_queries = DeliveryQueries(self.db)
        self.staff = StaffRepository(self.db, self.now)
        self.inbound = InboundRepository(self.db)
        self.suppressions = SuppressionRepository(self.db, self.now)
        self.delivery_reports = DeliveryReportRepository(self.db)
        self.reports = ReportRepository(self.db, self.now)
        self.results = ResultsRepository(self.db)
        self.engagement = EngagementRepository(self.db)
        self.bookings = BookingRepository(self.db, self.now, settings.booking_window_days)
        self.health = HealthRepository(self.db)
        self._dispatcher = dispatcher
        self._due = due
        self._tally = tally
        self._transports: dict[Channel, Transport] = {}
        self._limiters: dict[Channel, Limiter | None] = (
            {ch: limiters.get(ch) for ch in CHANNELS} if limiters is not None else {}
        )

    @property
    def dispatcher(self) -> Dispatcher:
        """How the core hands work to the workers; plugged in by the entry point."""
        if self._dispatcher is None:
            raise ConfigError(
                "no dispatcher: these services cannot queue work for the workers. The "
                "entry points (the CLI, the worker, the web app) plug the installed one in "
                "(installed_dispatcher); pass one as Services(settings, dispatcher=...)"
            )
        return self._dispatcher

    @dispatcher.setter
    def dispatcher(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    @property
    def has_dispatcher(self) -> bool:
        return self._dispatcher is not None

    def now(self) -> datetime:
        """Meridian's clock: UTC, shifted only for rehearsals (MERIDIAN_CLOCK_SHIFT_S)."""
        return utc_now() + self.settings.clock_shift

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.settings.redis_url,
            socket_timeout=10,
            socket_connect_timeout=5,
            health_check_interval=30,
        )

    @property
    def tally(self) -> Tally:
        """Counters shared by every process (send latency, rate-limit waits, webhooks):
        Redis hashes unless replaced."""
        if self._tally is None:
            self._tally = RedisTally(self.redis)
        return self._tally

    @property
    def due(self) -> DueQueue:
        """Batches waiting for their due time: the Redis sorted set unless replaced."""
        if self._due is None:
            self._due = DueBatches(self.redis)
        return self._due

    @cached_property
    def renderer(self) -> Renderer:
        return Renderer(self.settings.templates_dir, self._copy_templates)

    def _copy_templates(self, key: str) -> Templates | None:
        """The renderer's view of the ledger: one version of a campaign's copy, as
        templates (versions never change, so the renderer keeps what this returns)."""
        version = version_of(key)
        row = None if version is None else self.copies.get(version)
        return None if row is None else compile_templates(Copy.from_row(row))

    @property
    def clinic(self) -> Clinic:
        s = self.settings
        return Clinic(name=s.clinic_name, address=s.clinic_address, phone=s.clinic_phone)

    def limiter(self, channel: Channel) -> Limiter | None:
        """The channel's global limiter; None when its rate is 0 (no limit)."""
        # One per channel and process: the send loop asks for it before every message.
        if channel not in self._limiters:
            s = self.settings
            rate, burst = (
                (s.sms_rate, s.sms_burst) if channel == "sms" else (s.email_rate, s.email_burst)
            )
            self._limiters[channel] = (
                RateLimiter(self.redis, channel, rate, burst, s.rate_jitter_ms / 1000)
                if rate > 0
                else None
            )
        return self._limiters[channel]

    def transport(self, channel: Channel) -> Transport:
        if channel not in self._transports:
            self._transports[channel] = self._make_transport(channel)
        return self._transports[channel]

    def _make_transport(self, channel: Channel) -> Transport:
        s = self.settings
        kind = s.sms_transport if channel == "sms" else s.email_transport
        if kind == "twilio":
            from campaigns.transports.twilio_sms import TwilioSmsTransport

            return TwilioSmsTransport(s)
        if kind == "smtp":
            from campaigns.transports.smtp_email import SmtpEmailTransport

            return SmtpEmailTransport(s)
        if kind == "accept":
            from campaigns.transports.accept import AcceptTransport

            return AcceptTransport(channel)
        from campaigns.transports.outbox import OutboxTransport

        return OutboxTransport(channel, s.outbox_dir, s.email_from, s.email_reply_to)

    def unsubscribe_url(self, patient_id: int, delivery_id: int | None) -> str:
        token = make_unsubscribe_token(
            self.settings.secret_key.get_secret_value(),
            UnsubscribeClaim(patient_id, delivery_id, "email"),
        )
        return f"{self.settings.public_url}/unsubscribe/{token}"

    def link_rewriter(self, delivery_id: int) -> LinkRewriter:
        """Rewrites a delivery's links to the clinic's own short links (/l/<token>)."""
        return LinkRewriter(
            self.settings.secret_key.get_secret_value(),
            self.settings.public_url,
            delivery_id,
            lambda url: self.engagement.link_id(url, self.now()),
        )

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()
        self.db.dispose()
