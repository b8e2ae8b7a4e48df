"""Fan-out: a run's audience streamed into deliveries, each due in its patient's hours.

One delivery per patient and channel the policy picks; a channel the patient
cannot get is written as skipped with its reason (people.consent.skip_reason,
which also reads the suppression list), so every patient of the audience is
accounted for. Patients who share a number (or an email address) get one message
per occurrence: the first of them in id order; the others are skipped as
``shared_number``.

Each chunk's pending deliveries are queued in the due set as soon as the chunk is
committed, and claims accept a run that is still fanning out, so the first messages
go while the rest of the audience is being written. A fan-out that takes over from
one that died (rows already written) cannot know what its predecessor queued: it
queues every pending delivery of the run once it is done. On SQLite too, where the
fan-out's chunks and the senders' claims take turns at the one write lock
(campaigns.store.db asks for it every fraction of a millisecond). Then the run is
running.

``preview_audience`` judges today's audience by the same planner, writing nothing:
the campaign form's live count, with who is left out and why.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import redis
from redis.lock import Lock

from campaigns import keys
from campaigns.clock import lawful
from campaigns.clock.lawful import SendTime
from campaigns.clock.send_instant import send_instant
from campaigns.content import variants
from campaigns.content.catalogue import load_campaign
from campaigns.content.definitions import CampaignDefinition
from campaigns.domain.models import CHANNELS, Channel, Recipient
from campaigns.domain.states import DeliveryState, RunState, SkipReason
from campaigns.errors import InputError, NotFound
from campaigns.people.consent import skip_reason
from campaigns.sending.batches import group_batches
from campaigns.sending.pending import queue_pending

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)

# A fan-out holds its run's lock this long and renews it after every chunk; a
# worker killed mid-fan-out leaves a lock that expires, and the sweeper starts the
# fan-out again (rows already written are kept).
FAN_OUT_LOCK_S = 60
# Patients per chunk: each chunk is written, committed and queued before the next is
# read, so the first messages go after one chunk's work.
FAN_OUT_CHUNK = 1000


def recipient_send_time(
    svc: Services,
    occurrence: str,
    definition: CampaignDefinition,
    recipient: Recipient,
    channel: Channel,
    now: datetime,
    *,
    hold: bool = False,
) -> SendTime:
    """When this patient's message for the run's occurrence goes, and why
    (campaigns.clock.lawful): ``campaigns when``, the previews and the results show it
    (``hold``: planned, so held to the next lawful instant however late). Fan-out and
    the send-time check ask only for the instant: ``recipient_send_at``."""
    return lawful.for_recipient(
        recipient, channel, **_lawful_terms(svc, definition, occurrence), now=now, hold=hold
    )


def recipient_send_at(
    svc: Services,
    occurrence: str,
    definition: CampaignDefinition,
    recipient: Recipient,
    channel: Channel,
    now: datetime,
    *,
    hold: bool = False,
) -> datetime | None:
    """``recipient_send_time(...).at``, from campaigns.clock.send_instant's per-minute answers:
    what the send-time check asks for every message, each at its own instant."""
    return send_instant(
        recipient, channel, **_lawful_terms(svc, definition, occurrence), now=now, hold=hold
    )


def _lawful_terms(svc: Services, definition: CampaignDefinition, occurrence: str) -> Any:
    """The campaign's side of the lawful question: its occurrence, send time, grace
    and the clinic's zones."""
    return {
        "occurrence": occurrence,
        "send_time": definition.schedule.send_time,
        "grace": timedelta(hours=definition.schedule.grace_hours),
        "service_zones": svc.settings.clinic_service_zones,
    }


class _Planner:
    """Plans each patient's channels and when each is due, remembering the numbers and
    addresses this run has already planned a message to (one per occurrence, however
    many share them). A number is taken only by a delivery that will be sent: a patient
    skipped (for want of a lawful time, say) leaves it to the next who shares it."""

    def __init__(
        self,
        definition: CampaignDefinition,
        send_time: Callable[[Recipient, Channel], datetime | None],
        now: datetime,
    ) -> None:
        self.definition = definition
        self.send_time = send_time
        self.now = now
        # Only numbers and addresses that more than one patient has need remembering:
        # kept for every patient, a million addresses held 178 MB in the fan-out's
        # process (measured). A contact that becomes shared during the fan-out (an
        # import meanwhile) is still caught by the send-time check.
        # A shared contact moves from ``shared`` to ``taken`` when a delivery takes it:
        # each is held once, in one set (not also as a (channel, contact) pair).
        self.shared: dict[Channel, set[str]] = {"sms": set(), "email": set()}
        self.taken: dict[Channel, set[str]] = {"sms": set(), "email": set()}
        # contact -> why it is suppressed (the suppression list's reason)
        self.suppressed: dict[Channel, dict[str, str]] = {"sms": {}, "email": {}}

    def reason(self, recipient: Recipient, channel: Channel) -> SkipReason | None:
        contact = recipient.contact(channel)
        found = skip_reason(
            recipient, channel, suppressed=self.suppressed[channel].get(contact or "", False)
        )
        if found is None and contact and contact in self.taken[channel]:
            return SkipReason.SHARED_NUMBER
        return found

    def plan(self, recipient: Recipient) -> list[tuple[Channel, SkipReason | None, datetime]]:
        """Which channels this patient gets, each with a skip reason or None, and due."""
        definition = self.definition
        channels = list(definition.channels)
        if definition.channel_policy == "all_consented":
            planned = [(ch, self.reason(recipient, ch)) for ch in channels]
        else:
            preferred = (
                recipient.preferred_channel
                if recipient.preferred_channel in channels
                else channels[0]
            )
            order = [preferred] + [c for c in channels if c != preferred]
            chosen = next((ch for ch in order if self.reason(recipient, ch) is None), None)
            planned = (
                [(chosen, None)]
                if chosen is not None
                else [(preferred, self.reason(recipient, preferred))]
            )
        out: list[tuple[Channel, SkipReason | None, datetime]] = []
        for channel, skip in planned:
            due = self.now
            if skip is None:
                try:
                    at = self.send_time(recipient, channel)
                except InputError:
                    # A stored zone or state that is not valid: the send loop fails
                    # this delivery, with its reason, and does not take the number.
                    out.append((channel, None, due))
                    continue
                if at is None:
                    skip = SkipReason.NO_LAWFUL_TIME
                else:
                    due = at
                    contact = recipient.contact(channel)
                    if contact and contact in self.shared[channel]:
                        self.shared[channel].discard(contact)
                        self.taken[channel].add(contact)
            out.append((channel, skip, due))
        return out


def fan_out(svc: Services, run_id: int) -> int:
    """Stream the audience into deliveries, then queue the pending ones by due time."""
    run = svc.runs.get(run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    if run["status"] != RunState.FANNING_OUT:
        log.info("run %s is %s; fan-out already done", run_id, run["status"])
        return 0
    lock = svc.redis.lock(keys.fan_out_lock(run_id), timeout=FAN_OUT_LOCK_S, blocking=False)
    if not lock.acquire():
        log.info("run %s is being fanned out by another worker", run_id)
        return 0
    try:
        total = _fan_out(svc, run, lock)
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()
    log.info("run %s fanned out: %s deliveries", run_id, total)
    return total


def _fan_out(svc: Services, run: dict[str, Any], lock: Lock) -> int:
    run_id = int(run["id"])
    _, definition = load_campaign(svc, int(run["campaign_id"]))
    now = svc.now()
    today = now.astimezone(ZoneInfo(svc.settings.clinic_timezone)).date()
    total = 0
    split = variants.run_split(run)
    campaign_id = int(run["campaign_id"])
    planner = _Planner(
        definition,
        lambda recipient, channel: (
            # one ``now`` for the whole fan-out: answered once per candidate places
            recipient_send_at(svc, run["occurrence"], definition, recipient, channel, now)
        ),
        now,
    )
    # Nothing written yet: this fan-out queues every chunk it writes. Taking over
    # from one that died, it queues the whole run at the end instead.
    queue_as_written = int(run.get("planned") or 0) == 0
    for channel in CHANNELS:
        planner.shared[channel] = svc.patients.shared_contacts(channel)
    audience = definition.audience.model_dump()
    for chunk in svc.patients.stream_audience(audience, today, chunk=FAN_OUT_CHUNK):
        for channel in CHANNELS:
            contacts = (r.contact(channel) for r in chunk)
            planner.suppressed[channel] = svc.suppressions.suppressed_why(channel, contacts)
        rows = []
        for recipient in chunk:
            for channel, skip, due in planner.plan(recipient):
                rows.append(
                    {
                        "patient_id": recipient.patient_id,
                        "channel": channel,
                        "state": DeliveryState.SKIPPED if skip else DeliveryState.PENDING,
                        "skip_reason": skip,
                        "due_at": due,
                        # Stable per campaign and patient: a retry or re-run agrees.
                        "variant": (
                            None
                            if split is None
                            else variants.assign(campaign_id, recipient.patient_id, split)
                        ),
                    }
                )
        written = svc.deliveries.add(run_id, rows, svc.now())
        lock.reacquire()
        total += len(rows)
        if svc.runs.status(run_id) != RunState.FANNING_OUT:
            _cancelled_meanwhile(svc, run_id)
            return total
        if queue_as_written:
            _queue_chunk(svc, run_id, written)
    if not svc.runs.set_status(
        run_id, RunState.RUNNING, svc.now(), actor="system", only_from=[RunState.FANNING_OUT]
    ):
        _cancelled_meanwhile(svc, run_id)
        return total
    if not queue_as_written:
        queue_pending(svc, run_id)
    svc.runs.finish_if_done(run_id, svc.now())
    return total


def _queue_chunk(svc: Services, run_id: int, pending: list[tuple[int, datetime]]) -> None:
    """Queue the chunk just committed: its pending deliveries, batched by due second."""
    in_due_order = sorted(pending, key=lambda r: (r[1], r[0]))
    svc.due.add(group_batches(in_due_order, run_id, svc.settings.batch_size))


def _cancelled_meanwhile(svc: Services, run_id: int) -> None:
    """The run was cancelled while its rows were being written: what this fan-out
    wrote after the cancel is skipped as cancelled too, and nothing is queued."""
    skipped = svc.deliveries.cancel_pending(run_id, svc.now())
    log.info("run %s was cancelled during fan-out; %s more deliveries skipped", run_id, skipped)


def stalled_fan_outs(svc: Services, older_than: datetime) -> list[int]:
    """Runs left fanning out with nobody at it (the worker died, or Redis lost the task)."""
    return [
        run_id
        for run_id in svc.runs.ids_with_status(RunState.FANNING_OUT, started_before=older_than)
        if not svc.redis.exists(keys.fan_out_lock(run_id))
    ]


@dataclass
class AudiencePreview:
    """Who a definition's audience selects today, and who of them fan-out would skip
    and why (the same rules, without the hour of sending, which depends on the day)."""

    selected: int  # patients the audience picks
    reached: int  # of those looked at, those at least one channel would carry a message to
    looked_at: int  # patients judged (all, up to PREVIEW_LIMIT)
    excluded: dict[str, int] = field(default_factory=dict)  # skip reason -> patients
    sample_in: list[tuple[Recipient, list[Channel]]] = field(default_factory=list)
    sample_out: list[tuple[Recipient, list[tuple[Channel, str]]]] = field(default_factory=list)


PREVIEW_LIMIT = 20_000  # patients judged for a live preview; the count covers them all


def preview_audience(
    svc: Services, definition: CampaignDefinition, *, sample: int = 5
) -> AudiencePreview:
    """Fan-out's judgement of today's audience, written nowhere: for the campaign form."""
    today = svc.now().astimezone(ZoneInfo(svc.settings.clinic_timezone)).date()
    audience = definition.audience.model_dump()
    found = AudiencePreview(
        selected=svc.patients.count_audience(audience, today), reached=0, looked_at=0
    )
    planner = _Planner(definition, lambda recipient, channel: svc.now(), svc.now())
    for chunk in svc.patients.stream_audience(audience, today):
        for channel in CHANNELS:
            contacts = (r.contact(channel) for r in chunk)
            planner.suppressed[channel] = svc.suppressions.suppressed_why(channel, contacts)
        for recipient in chunk:
            plan = planner.plan(recipient)
            sent = [ch for ch, skip, _ in plan if skip is None]
            found.looked_at += 1
            if sent:
                found.reached += 1
                if len(found.sample_in) < sample:
                    found.sample_in.append((recipient, sent))
                continue
            reasons = [(ch, str(skip)) for ch, skip, _ in plan if skip is not None]
            for reason in {r for _, r in reasons}:
                found.excluded[reason] = found.excluded.get(reason, 0) + 1
            if len(found.sample_out) < sample:
                found.sample_out.append((recipient, reasons))
        if found.looked_at >= PREVIEW_LIMIT:
            break
    return found
