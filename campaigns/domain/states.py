"""The state machine, defined once: channels, campaign, run and delivery states, skip
reasons, and which state may follow which.

The values are the strings the ledger stores, so a ``StrEnum`` member and its
string compare equal and the database is the same as before these types.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import StrEnum
from typing import Literal, TypeVar

from campaigns.errors import InputError, MeridianError

Channel = Literal["sms", "email"]
CHANNELS: tuple[Channel, ...] = ("sms", "email")
S = TypeVar("S", bound=StrEnum)


def channel_of(value: str) -> Channel:
    """The channel a stored or typed string names; InputError for anything else."""
    if value == "sms":
        return "sms"
    if value == "email":
        return "email"
    raise InputError(f"{value!r} is not a channel (sms or email)")


class IllegalTransition(MeridianError):
    """A caller asked for a state change the state machine does not allow (a bug)."""


class CampaignState(StrEnum):
    DRAFT = "draft"  # saved, or changed since approval: nothing starts
    SCHEDULED = "scheduled"  # approved: occurrences start on the schedule, or by hand
    PAUSED = "paused"  # held: no occurrence starts until resumed
    CANCELLED = "cancelled"  # its runs stop for good; the name is free for a new campaign
    ARCHIVED = "archived"  # hidden from the list, never starts; restored as a draft

    def can_become(self, other: CampaignState) -> bool:
        return other in CAMPAIGN_TRANSITIONS[self]

    @classmethod
    def sources(cls, target: CampaignState) -> frozenset[CampaignState]:
        """Every state a campaign may reach ``target`` from."""
        return frozenset(s for s, nexts in CAMPAIGN_TRANSITIONS.items() if target in nexts)


class RunState(StrEnum):
    FANNING_OUT = "fanning_out"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    MISSED = "missed"  # recorded instead of started: beat was down past the grace period

    def can_become(self, other: RunState) -> bool:
        return other in RUN_TRANSITIONS[self]

    @classmethod
    def sources(cls, target: RunState) -> frozenset[RunState]:
        """Every state a run may reach ``target`` from."""
        return frozenset(s for s, nexts in RUN_TRANSITIONS.items() if target in nexts)


class DeliveryState(StrEnum):
    PENDING = "pending"  # waiting for its due time (next_attempt_at)
    SENDING = "sending"  # claimed by one worker
    SENT = "sent"  # handed over to the provider
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    SKIPPED = "skipped"  # never sent, for a SkipReason
    UNKNOWN = "unknown"  # may have reached the provider: reconciled, never resent blindly

    def can_become(self, other: DeliveryState) -> bool:
        return other in DELIVERY_TRANSITIONS[self]


class SkipReason(StrEnum):
    NO_CONSENT = "no_consent"
    OPTED_OUT = "opted_out"
    INVALID_CONTACT = "invalid_contact"
    FREQUENCY_CAP = "frequency_cap"
    CANCELLED = "cancelled"
    # No instant lawful everywhere the patient might be within the campaign's grace
    # (a Sunday or holiday where a state forbids them; zones too far apart).
    NO_LAWFUL_TIME = "no_lawful_time"
    # The consent on file was given for another number / address than the current one.
    NO_CONSENT_FOR_NUMBER = "no_consent_for_number"
    NO_CONSENT_FOR_ADDRESS = "no_consent_for_address"
    SUPPRESSED = "suppressed"  # the number or address is on the suppression list
    SHARED_NUMBER = "shared_number"  # another patient with this number got this occurrence
    # Suppressed for what the provider reported (campaigns.people.bounces):
    BOUNCED = "bounced"  # hard bounce, repeated soft bounces, or SMTP 5xx at send
    COMPLAINED = "complained"  # the recipient reported a message as spam
    DEAD_NUMBER = "dead_number"  # Twilio: unknown, invalid, landline or not a mobile


# A campaign is saved as a draft and approved (scheduled); it may pause and resume,
# and be cancelled from any state but cancelled and archived. Scheduling again is
# allowed (it writes the schedule entry again). Any campaign may be archived; an
# archived one is restored as a draft (its approval counts while its content is
# unchanged). Cancelled and archived campaigns free their name (FREED_NAME_STATES).
CAMPAIGN_TRANSITIONS: Mapping[CampaignState, frozenset[CampaignState]] = {
    CampaignState.DRAFT: frozenset(
        {CampaignState.SCHEDULED, CampaignState.CANCELLED, CampaignState.ARCHIVED}
    ),
    # Back to draft: its content changed since it was approved.
    CampaignState.SCHEDULED: frozenset(
        {
            CampaignState.SCHEDULED,
            CampaignState.PAUSED,
            CampaignState.CANCELLED,
            CampaignState.ARCHIVED,
            CampaignState.DRAFT,
        }
    ),
    CampaignState.PAUSED: frozenset(
        {
            CampaignState.SCHEDULED,
            CampaignState.CANCELLED,
            CampaignState.ARCHIVED,
            CampaignState.DRAFT,
        }
    ),
    CampaignState.CANCELLED: frozenset({CampaignState.ARCHIVED}),
    CampaignState.ARCHIVED: frozenset({CampaignState.DRAFT}),
}
# A campaign in one of these no longer holds its name: a new one may take it.
FREED_NAME_STATES = frozenset({CampaignState.CANCELLED, CampaignState.ARCHIVED})

# A run is created fanning out (or missed), runs, may pause and resume, and ends.
RUN_TRANSITIONS: Mapping[RunState, frozenset[RunState]] = {
    RunState.FANNING_OUT: frozenset({RunState.RUNNING, RunState.CANCELLED}),
    RunState.RUNNING: frozenset({RunState.PAUSED, RunState.FINISHED, RunState.CANCELLED}),
    RunState.PAUSED: frozenset({RunState.RUNNING, RunState.CANCELLED}),
    RunState.FINISHED: frozenset(),
    RunState.CANCELLED: frozenset(),
    RunState.MISSED: frozenset(),
}
# The states a run is created in.
INITIAL_RUN_STATES = frozenset({RunState.FANNING_OUT, RunState.MISSED})
# Runs whose deliveries are claimed and sent: fan-out queues each chunk as it is
# written, so a run sends while it is still fanning out.
SENDING_RUN_STATES = frozenset({RunState.FANNING_OUT, RunState.RUNNING})
# A run in one of these changes no more.
FINAL_RUN_STATES = frozenset(s for s, nexts in RUN_TRANSITIONS.items() if not nexts)

# The claim takes pending deliveries; the worker records what happened; whatever
# goes back to pending goes through campaigns.sending.pending.back_to_pending.
DELIVERY_TRANSITIONS: Mapping[DeliveryState, frozenset[DeliveryState]] = {
    DeliveryState.PENDING: frozenset({DeliveryState.SENDING, DeliveryState.SKIPPED}),
    DeliveryState.SENDING: frozenset(
        {
            DeliveryState.SENT,
            DeliveryState.FAILED,
            DeliveryState.SKIPPED,
            DeliveryState.UNKNOWN,
            DeliveryState.PENDING,
        }
    ),
    DeliveryState.UNKNOWN: frozenset({DeliveryState.SENT, DeliveryState.PENDING}),
    # Provider status callbacks may arrive out of order; the last one stands.
    DeliveryState.SENT: frozenset({DeliveryState.DELIVERED, DeliveryState.UNDELIVERED}),
    DeliveryState.DELIVERED: frozenset({DeliveryState.DELIVERED, DeliveryState.UNDELIVERED}),
    DeliveryState.UNDELIVERED: frozenset({DeliveryState.DELIVERED, DeliveryState.UNDELIVERED}),
    DeliveryState.FAILED: frozenset(),
    DeliveryState.SKIPPED: frozenset(),
}
# A run is not finished while any of its deliveries is in one of these.
ACTIVE_DELIVERY_STATES = frozenset(
    {DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.UNKNOWN}
)
# What a worker records for a claim it used (a return to pending is not recorded:
# it goes back through back_to_pending, which also queues it).
RECORDED_OUTCOMES = DELIVERY_TRANSITIONS[DeliveryState.SENDING] - {DeliveryState.PENDING}


def run_sources(target: RunState, only_from: Collection[RunState] | None = None) -> list[RunState]:
    """The states a run may move to ``target`` from, narrowed to ``only_from``.

    IllegalTransition when ``only_from`` names a state ``target`` may not follow.
    """
    return _sources("run", target, RunState.sources(target), only_from)


def campaign_sources(
    target: CampaignState, only_from: Collection[CampaignState] | None = None
) -> list[CampaignState]:
    """The states a campaign may move to ``target`` from, narrowed to ``only_from``.

    IllegalTransition when ``only_from`` names a state ``target`` may not follow.
    """
    return _sources("campaign", target, CampaignState.sources(target), only_from)


def _sources(
    what: str, target: S, allowed: frozenset[S], only_from: Collection[S] | None
) -> list[S]:
    if only_from is None:
        return sorted(allowed)
    illegal = sorted(set(only_from) - allowed)
    if illegal:
        raise IllegalTransition(
            f"a {what} cannot go from {', '.join(illegal)} to {target}; "
            f"allowed from: {', '.join(sorted(allowed)) or 'nowhere'}"
        )
    return sorted(only_from)
