"""The inbox digest: an email to MERIDIAN_INBOX_DIGEST_TO saying how many patient
replies wait for a person, sent only when new ones arrived since the last digest.

It holds counts by kind, the age of the oldest waiting reply and a link to the
inbox: never a message, a number or a name (email leaves the console's access
controls; minimum necessary, 45 CFR 164.502(b)).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING

from campaigns import keys
from campaigns.domain.transport import OutboundMessage

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)

_LABELS = {
    "booking": "booking requests",
    "revocation": "revocations in free text (already applied; check them)",
    "stop": "opt-outs in a sentence (already applied; check them)",
    "wrong_number": "wrong-number replies (number suppressed; fix the patient's record)",
    "unclear": "opt-out words read as not about messages (consent kept; decide)",
    "other": "other replies",
}


def send_digest(svc: Services) -> int:
    """Email the digest if it is configured and new replies wait; how many wait."""
    to = svc.settings.inbox_digest_to
    if not to:
        return 0
    waiting = svc.inbound.open_messages()
    newest = max((int(m["id"]) for m in waiting), default=0)
    last = svc.redis.get(keys.INBOX_DIGEST_LAST)
    if not waiting or newest <= int(last or 0):
        return 0
    kinds = Counter(str(m["kind"]) for m in waiting)
    oldest = min(m["received_at"] for m in waiting)
    hours = max(0, int((svc.now() - oldest).total_seconds() // 3600))
    lines = [
        f"{len(waiting)} patient repl{'y waits' if len(waiting) == 1 else 'ies wait'} "
        f"for a person in the {svc.clinic.name} inbox; the oldest came {hours} h ago.",
        "",
        *(f"  {n}  {_LABELS.get(kind, kind)}" for kind, n in kinds.most_common()),
        "",
        f"Open the inbox: {svc.settings.public_url}/inbox",
    ]
    message = OutboundMessage(
        delivery_id=0,
        run_id=0,
        channel="email",
        to=to,
        subject=f"Inbox: {len(waiting)} repl{'y' if len(waiting) == 1 else 'ies'} need a person",
        body="\n".join(lines) + "\n",
    )
    transport = svc.transport("email")
    try:
        transport.send(message)
    finally:
        transport.close()
    svc.redis.set(keys.INBOX_DIGEST_LAST, newest)
    log.info("inbox digest sent: %s waiting, newest inbound %s", len(waiting), newest)
    return len(waiting)
