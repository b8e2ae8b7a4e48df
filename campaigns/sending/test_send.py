"""Send a test: the campaign's message, rendered for a chosen (or a sample) patient,
sent to the signed-in staff member's own phone or email through the real transport.

A test is marked ("TEST: " before an SMS, "[TEST] " before an email's subject), is
never a delivery (so never in a run's results nor in any frequency cap), carries an
unsubscribe link that names no patient, is audited (who, campaign, channel; never the
address or the message), and is limited per staff member
(MERIDIAN_TEST_SENDS_PER_HOUR). A contact on the suppression list gets no test.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

import redis

from campaigns import keys
from campaigns.content.catalogue import SAMPLE_NAME, load_campaign
from campaigns.content.message import render_message
from campaigns.domain.models import Recipient
from campaigns.domain.states import channel_of
from campaigns.domain.transport import OutboundMessage
from campaigns.errors import BrokerUnavailable, InputError, NotFound, Problem, SendError

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)

SMS_MARK = "TEST: "
SUBJECT_MARK = "[TEST] "
WINDOW_S = 3600


def sample_recipient() -> Recipient:
    return Recipient(
        patient_id=0,
        external_id="sample",
        first_name=SAMPLE_NAME,
        last_name="Featherstonehaugh",
        email=None,
        phone=None,
        timezone=None,
        state=None,
        preferred_channel=None,
        sms_opt_in=None,
        email_opt_in=None,
    )


def _take_a_test_send(svc: Services, username: str) -> None:
    # An hour from the first test on Redis's own clock (the key's lifetime), so a
    # shifted Meridian clock or an hour's boundary cannot reset the count early. A
    # count with no lifetime (the process stopped between the two) gets one now.
    key = keys.test_sends(username)
    try:
        pipe = svc.redis.pipeline()
        pipe.incr(key)
        pipe.ttl(key)
        counted, ttl = pipe.execute()
        used = int(counted)
        if int(ttl) < 0:
            svc.redis.expire(key, WINDOW_S)
    except redis.RedisError as exc:
        raise BrokerUnavailable("could not count test sends in Redis") from exc
    limit = svc.settings.test_sends_per_hour
    if used > limit:
        raise InputError(
            f"you have sent {limit} tests this hour (MERIDIAN_TEST_SENDS_PER_HOUR); "
            "try again within the hour"
        )


def send_test(
    svc: Services,
    campaign: str,
    *,
    username: str,
    channel: str,
    external_id: str | None = None,
) -> str:
    """Send one test of ``channel`` to the staff member's own contact; a sentence."""
    row, definition = load_campaign(svc, campaign)
    ch = channel_of(channel)
    if ch not in definition.channels:
        raise InputError(
            f"campaign {row['name']} has no {ch} message",
            [Problem("channel", f"pick one of {', '.join(definition.channels)}")],
        )
    user = svc.staff.get(username)
    if user is None:
        raise NotFound(f"no staff user named {username!r}")
    to = user["phone"] if ch == "sms" else user["email"]
    if not to:
        what = "phone" if ch == "sms" else "email"
        raise InputError(
            f"no {what} on your profile to send the test to",
            [Problem(what, "add it on your profile page (top right), then send again")],
        )
    if svc.suppressions.suppressed(ch, {to, to.lower()}):
        what = "phone" if ch == "sms" else "email"
        raise InputError(
            f"the {what} on your profile is on the suppression list (it opted out, "
            "bounced or was suppressed by staff): Meridian sends it nothing, tests included",
            [Problem(what, "put your own, reachable one on your profile page, then send again")],
        )
    if external_id:
        patient = svc.patients.find(external_id)
        if patient is None:
            raise InputError(
                "no such patient", [Problem("patient", "no patient with that external id")]
            )
        svc.reports.record_access(
            username, "patient.test_send", patient.patient_id, campaign=row["name"]
        )
    else:
        patient = sample_recipient()
    # Patient 0: the unsubscribe link in a test names nobody, so a click on it (or a
    # mail client's one-click) cannot unsubscribe the patient the copy was rendered for.
    rendered = render_message(svc, definition, dataclasses.replace(patient, patient_id=0), ch)
    message = OutboundMessage(
        delivery_id=0,
        run_id=0,
        channel=ch,
        to=to,
        body=SMS_MARK + rendered.body if ch == "sms" else rendered.body,
        subject=SUBJECT_MARK + (rendered.subject or "") if ch == "email" else None,
        html=rendered.html,
        unsubscribe_url=rendered.unsubscribe_url,
    )
    _take_a_test_send(svc, username)
    try:
        svc.transport(ch).send(message)
    except SendError as exc:
        log.warning("test send of campaign %s (%s) failed: %s", row["id"], ch, type(exc).__name__)
        svc.reports.record_campaign_event(
            username, "campaign.test_send.failed", int(row["id"]), channel=ch
        )
        raise InputError(
            f"the {ch} provider did not take the test ({exc.reason}); check the number "
            "or address on your profile, or try again shortly"
        ) from None
    svc.reports.record_campaign_event(username, "campaign.test_send", int(row["id"]), channel=ch)
    log.info("test send of campaign %s (%s) by staff user sent", row["id"], ch)
    where = "phone" if ch == "sms" else "email"
    return f"Test {ch} sent to your {where} (marked as a test; not counted in results)."
