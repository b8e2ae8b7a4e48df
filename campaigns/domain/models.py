"""Plain domain records passed between the services and the store.

``Channel`` and ``CHANNELS`` are defined in campaigns.domain.states and named here
too, where most records that carry a channel are.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from campaigns.domain.states import CHANNELS as CHANNELS
from campaigns.domain.states import Channel as Channel
from campaigns.domain.states import DeliveryState, SkipReason


@dataclass(frozen=True)
class ConsentFact:
    """A patient's word on one channel, as evidence: what, when, where from, which words."""

    channel: Channel
    granted: bool
    at: datetime  # aware
    source: str  # import, web-form, keyword, staff, provider-error, ...
    text_shown: str | None = None
    # The number or address it was given for; None: the patient's current one.
    address: str | None = None


@dataclass(frozen=True)
class PatientRecord:
    """One validated patient row, ready to upsert by external_id."""

    external_id: str
    first_name: str | None
    last_name: str | None
    email: str | None  # normalised by email-validator
    phone: str | None  # E.164
    timezone: str | None  # IANA
    state: str | None  # USPS two-letter code
    tags: tuple[str, ...]
    last_visit: date | None
    next_appointment: date | None
    preferred_channel: Channel | None
    consents: tuple[ConsentFact, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Recipient:
    """What fan-out and sending need of a patient: ids, contacts, zone, state, consent."""

    patient_id: int
    external_id: str
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    timezone: str | None
    state: str | None
    preferred_channel: Channel | None
    sms_opt_in: bool | None  # None: never consented; False: said no or revoked
    email_opt_in: bool | None
    # The number / address the latest word was given for ("" for none); a grant
    # for another number than the patient's current one is no consent for it.
    sms_consent_for: str | None = None
    email_consent_for: str | None = None

    def opt_in(self, channel: Channel) -> bool | None:
        return self.sms_opt_in if channel == "sms" else self.email_opt_in

    def consent_for(self, channel: Channel) -> str | None:
        return self.sms_consent_for if channel == "sms" else self.email_consent_for

    def contact(self, channel: Channel) -> str | None:
        return self.phone if channel == "sms" else self.email


@dataclass(frozen=True)
class Claimed:
    """A delivery this worker owns until it records an outcome."""

    delivery_id: int
    run_id: int
    patient_id: int
    channel: Channel
    attempts: int
    due_at: datetime
    variant: str | None = None  # the A/B variant of the copy it sends; None: no test


@dataclass(frozen=True)
class Outcome:
    """What happened to one claimed delivery; applied in bulk."""

    delivery_id: int
    state: DeliveryState  # sent, failed, pending (retry or later), skipped, unknown
    provider_id: str | None = None
    error_code: str | None = None
    error_reason: str | None = None
    skip_reason: SkipReason | None = None
    next_attempt_at: datetime | None = None
    # False when the message was never offered to the provider (held for the
    # patient's window): the claim's attempt is given back.
    tried: bool = True


@dataclass(frozen=True)
class PendingAgain:
    """One delivery going back to pending (campaigns.sending.pending.back_to_pending).

    ``due`` is when it may be claimed again; None for a claim never used, which is
    undone as if never taken (its attempt not counted, its due time as before).
    """

    delivery_id: int
    due: datetime | None
    source: DeliveryState = DeliveryState.SENDING  # or UNKNOWN, after reconciliation
    error_code: str | None = None
    error_reason: str | None = None
    tried: bool = True  # False: held for the window, not one of max_attempts' tries


@dataclass(frozen=True)
class Batch:
    """Deliveries of one run sent by one send task; the claim decides what is sent."""

    run_id: int
    delivery_ids: list[int]


@dataclass(frozen=True)
class StoredInbound:
    """What was decided about a stored message: no phone, no body."""

    inbound_id: int
    kind: str
    flagged: bool
    patient_id: int | None


@dataclass(frozen=True)
class Heartbeats:
    """What the workers and beats last reported: seconds since each did, on the
    broker's clock (so a skewed host clock cannot make a dead worker look alive)."""

    workers: dict[str, tuple[float, tuple[str, ...]]]  # hostname -> (age, queues consumed)
    beats: dict[str, tuple[float, bool]]  # beat id -> (age, holds the lead)

    def queue_age(self, queue: str) -> float | None:
        """Seconds since a worker consuming ``queue`` last reported; None if none ever did."""
        ages = [age for age, queues in self.workers.values() if queue in queues]
        return min(ages) if ages else None

    def beat_age(self) -> float | None:
        """Seconds since a beat last ticked; None if none ever did."""
        return min((age for age, _ in self.beats.values()), default=None)


@dataclass
class SliceFigures:
    """What one send slice measured, per channel, for /metrics: seconds each provider
    call took, and seconds each wait for the shared rate limit took."""

    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    waits: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
