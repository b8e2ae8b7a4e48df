"""Sending one batch: claim -> check -> render -> rate-limit -> send -> record.

A batch is claimed in slices no longer than about a second of sending at the
provider's rate, so a pause (which stops new claims) takes effect within a second
and a claim is never held for long. What goes back to pending (a retry, a window
not open yet, a claim never used) goes through campaigns.sending.pending. Whether a
message may go is decided in campaigns.sending.checks; the provider call, and what its
answer makes of the delivery, are in campaigns.sending.outcomes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from campaigns.content import variants
from campaigns.content.catalogue import load_campaign, run_templates_key
from campaigns.content.definitions import CampaignDefinition
from campaigns.content.message import render_message
from campaigns.domain.models import (
    Batch,
    Channel,
    Claimed,
    Outcome,
    PendingAgain,
    Recipient,
    SliceFigures,
)
from campaigns.domain.states import SENDING_RUN_STATES, DeliveryState, SkipReason
from campaigns.domain.transport import OutboundMessage
from campaigns.errors import MeridianError, NotFound
from campaigns.sending.batches import chunked
from campaigns.sending.checks import SliceChecks, render_failure
from campaigns.sending.outcomes import send_one
from campaigns.sending.pending import back_to_pending

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    claimed: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, state: str) -> None:
        self.counts[state] = self.counts.get(state, 0) + 1


def _slice_size(svc: Services, channels: Sequence[Channel], batch_size: int) -> int:
    """About a second of sending at the slowest rate of the campaign's own channels."""
    s = svc.settings
    rates = [r for ch in channels if (r := s.sms_rate if ch == "sms" else s.email_rate) > 0]
    if not rates:
        return batch_size
    return max(1, min(batch_size, int(min(rates))))


def send_batch(svc: Services, batch: Batch) -> BatchResult:
    result = BatchResult()
    run = _run_of(svc, batch.run_id)
    _, definition = load_campaign(svc, int(run["campaign_id"]))
    # The copy the run was started with, even if staff have saved a newer one since.
    templates = run_templates_key(definition, run)
    touched = False
    try:
        size = _slice_size(svc, definition.channels, len(batch.delivery_ids))
        for ids in chunked(batch.delivery_ids, size):
            claimed = svc.deliveries.claim(ids, svc.now())
            if not claimed:
                continue
            touched = True
            result.claimed += len(claimed)
            outcomes = _send_slice(svc, definition, claimed, templates, run)
            for o in outcomes:
                result.add(o.state)
            if len(outcomes) < len(claimed):
                log.info("run %s is no longer running; batch stopped", batch.run_id)
                break
    finally:
        for channel in definition.channels:
            svc.transport(channel).close()
    if touched:
        svc.runs.finish_if_done(batch.run_id, svc.now())
    return result


def _send_slice(
    svc: Services,
    definition: CampaignDefinition,
    claimed: Sequence[Claimed],
    templates: str,
    run: dict[str, Any],
) -> list[Outcome]:
    """Send one claimed slice and record every outcome, whatever happens.

    Claims never handed to a provider (the run was paused or cancelled meanwhile,
    or the worker hit an error such as Redis going away) go straight back to
    pending, and are queued again; only a message that may have reached the
    provider is left for the sweeper to reconcile.
    """
    sender = _SliceSender(svc, definition, claimed, templates, run)
    try:
        sender.run()
    finally:
        if sender.in_flight is not None:
            sender.outcomes.append(
                Outcome(
                    sender.in_flight.delivery_id,
                    DeliveryState.UNKNOWN,
                    error_reason="worker error",
                )
            )
        svc.deliveries.record(
            [o for o in sender.outcomes if o.state != DeliveryState.PENDING], svc.now()
        )
        back_to_pending(svc, claimed[0].run_id, _returns(sender.outcomes, claimed))
        svc.tally.add_slice(sender.figures)
    return sender.outcomes


def _returns(outcomes: Sequence[Outcome], claimed: Sequence[Claimed]) -> list[PendingAgain]:
    """What of a slice goes back to pending: sends to try later, and claims never used."""
    later = [
        PendingAgain(
            o.delivery_id,
            o.next_attempt_at,
            error_code=o.error_code,
            error_reason=o.error_reason,
            tried=o.tried,
        )
        for o in outcomes
        if o.state == DeliveryState.PENDING
    ]
    done = {o.delivery_id for o in outcomes}
    return later + [PendingAgain(c.delivery_id, None) for c in claimed if c.delivery_id not in done]


# How often a slice in progress looks at its run's status, so a pause or cancel
# stops the sending within a second even when the slice is long, and renews its
# claims, so the sweeper takes only the claims of a worker that died.
STATUS_CHECK_S = 0.5


def _run_of(svc: Services, run_id: int) -> dict[str, Any]:
    run = svc.runs.get(run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    return run


class _SliceSender:
    def __init__(
        self,
        svc: Services,
        definition: CampaignDefinition,
        claimed: Sequence[Claimed],
        templates: str,
        run: dict[str, Any],
    ) -> None:
        self.templates = templates
        # each A/B variant's copy, pinned by the run (campaigns.content.variants)
        self.variant_keys: dict[int, dict[str, str]] = {}
        self.svc = svc
        self.definition = definition
        self.claimed = claimed
        self.outcomes: list[Outcome] = []
        # The claim being handed to a provider: if anything fails then, the
        # message may have gone, so it is not released.
        self.in_flight: Claimed | None = None
        # the batch's run is already read: not read again for its occurrence
        self._occurrences: dict[int, str] = {int(run["id"]): str(run["occurrence"])}
        self.figures = SliceFigures()  # for /metrics: provider latency, rate-limit waits

    def _occurrence(self, run_id: int) -> str:
        if run_id not in self._occurrences:
            run = self.svc.runs.get(run_id)
            if run is None:
                raise NotFound(f"no run {run_id}")
            self._occurrences[run_id] = str(run["occurrence"])
        return self._occurrences[run_id]

    def _templates(self, c: Claimed) -> str:
        """The copy this delivery sends: its A/B variant's, else the run's."""
        if c.variant is None:
            return self.templates
        if c.run_id not in self.variant_keys:
            run = self.svc.runs.get(c.run_id) or {}
            self.variant_keys[c.run_id] = variants.run_keys(run, self.templates)
        return self.variant_keys[c.run_id].get(c.variant, self.templates)

    def _carry_on(self, rest: Sequence[Claimed]) -> bool:
        """Between sends, every STATUS_CHECK_S: is the run still running, and are the
        remaining claims still ours? Renewing them tells the sweeper this worker is
        alive, however long the slice takes at a shared rate."""
        if self.svc.runs.status(rest[0].run_id) not in SENDING_RUN_STATES:
            return False
        ids = [c.delivery_id for c in rest]
        if self.svc.deliveries.touch_claims(ids, self.svc.now()) < len(ids):
            log.warning(
                "run %s: claims were taken over by the sweeper; batch stopped", rest[0].run_id
            )
            return False
        return True

    def _wait_for_slot(self, due: float, rest: Sequence[Claimed]) -> bool:
        """Sleep until the rate limiter's slot at ``due`` (monotonic), looking at the run
        and renewing the claims every STATUS_CHECK_S meanwhile: many senders sharing a
        slow rate can each wait far longer than a claim lives. False: stop the slice
        (the slot is lost). The last look comes before the last stretch of sleep, so
        nothing stands between the slot and the send."""
        while (left := due - time.monotonic()) > 0:
            if left <= STATUS_CHECK_S:
                time.sleep(left)
                break
            time.sleep(STATUS_CHECK_S)
            if not self._carry_on(rest):
                return False
        return True

    def run(self) -> None:
        svc, definition, claimed = self.svc, self.definition, self.claimed
        recipients = svc.patients.recipients([c.patient_id for c in claimed])
        checks = SliceChecks(svc, definition, claimed, recipients)
        next_check = time.monotonic() + STATUS_CHECK_S
        for i, c in enumerate(claimed):
            if time.monotonic() >= next_check:
                if not self._carry_on(claimed[i:]):
                    return
                next_check = time.monotonic() + STATUS_CHECK_S
            recipient = recipients.get(c.patient_id)
            channel = c.channel
            if recipient is None:
                self.outcomes.append(
                    Outcome(
                        c.delivery_id, DeliveryState.SKIPPED, skip_reason=SkipReason.INVALID_CONTACT
                    )
                )
                continue
            occurrence = self._occurrence(c.run_id)
            # Judged once before rendering and waiting for the rate limiter (nothing
            # skipped or held costs a token), and again after a wait, on a fresh clock:
            # at a shared 1/s the wait may be long enough to close the window.
            now = svc.now()
            stop = checks.judge(c, recipient, occurrence, now)
            if stop is not None:
                self.outcomes.append(stop)
                continue
            try:
                templates = self._templates(c)
                message = build_message(svc, definition, c, recipient, channel, templates)
            except MeridianError as exc:
                # The template fails for this patient (a sandbox bound tripped by their
                # values, a template edited on disk since the campaign was applied):
                # sending it again cannot help, and the rest of the slice goes on.
                log.warning(
                    "delivery %s failed for good: its message could not be rendered",
                    c.delivery_id,
                )
                self.outcomes.append(
                    Outcome(
                        c.delivery_id,
                        DeliveryState.FAILED,
                        error_reason=render_failure(exc, recipient),
                    )
                )
                continue
            # Built before the rate limiter's slot, not between the slot and the send (a
            # process's first text would land late: sending.ratelimit's jitter), and a
            # transport that cannot be built fails before anything is handed over.
            svc.transport(channel)
            limiter = svc.limiter(channel)
            if limiter is not None:
                started = time.monotonic()
                # A slot taken for a message then held or stopped is lost: harmless.
                due = started + limiter.reserve()
                if not self._wait_for_slot(due, claimed[i:]):
                    return
                self.figures.waits[channel].append(time.monotonic() - started)
                now = svc.now()
                stop = checks.judge(c, recipient, occurrence, now)
                if stop is not None:
                    self.outcomes.append(stop)
                    continue
            self.in_flight = c
            started = time.monotonic()
            outcome = send_one(svc, definition, c, recipient, message)
            self.figures.latency[channel].append(time.monotonic() - started)
            self.in_flight = None
            self.outcomes.append(outcome)
            if outcome.state == DeliveryState.SENT:
                checks.sent(c, recipient, now)


def build_message(
    svc: Services,
    definition: CampaignDefinition,
    c: Claimed,
    recipient: Recipient,
    channel: Channel,
    templates: str | None = None,
) -> OutboundMessage:
    """The claimed delivery's message, addressed (content.message.render_message), from
    ``templates`` (the run's copy, catalogue.run_templates_key; default: the folder)."""
    rendered = render_message(
        svc,
        definition,
        recipient,
        channel,
        delivery_id=c.delivery_id,
        templates=templates or definition.templates,
    )
    return OutboundMessage(
        delivery_id=c.delivery_id,
        run_id=c.run_id,
        channel=channel,
        to=recipient.contact(channel) or "",
        body=rendered.body,
        subject=rendered.subject,
        html=rendered.html,
        unsubscribe_url=rendered.unsubscribe_url,
    )
