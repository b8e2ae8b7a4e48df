"""The outbox transport: a real transport that writes files instead of sending.

Each message is one JSON line in ``outbox.jsonl`` (channel, to, run id, delivery
id, rendered parts) and a readable ``.txt`` (SMS) or ``.eml`` (email) file beside
it. It is the default, so a fresh install never messages anyone by accident.
"""

from __future__ import annotations

import fcntl
import json
import os
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

from campaigns.domain.models import Channel
from campaigns.domain.transport import OutboundMessage, SeenMessage, SendReceipt
from campaigns.errors import PermanentError
from campaigns.transports.mime import build_email, message_id

LOG_NAME = "outbox.jsonl"


class OutboxTransport:
    def __init__(
        self,
        channel: Channel,
        directory: Path,
        email_from: str = "",
        email_reply_to: str | None = None,
    ) -> None:
        self.channel = channel
        self.directory = directory
        self.email_from = email_from
        self.email_reply_to = email_reply_to
        (directory / channel).mkdir(parents=True, exist_ok=True)

    def send(self, message: OutboundMessage) -> SendReceipt:
        provider_id = f"outbox-{message.channel}-{message.delivery_id}"
        # When the provider got it, on the provider's (real) clock, as a real provider
        # stamps it; the ledger's sent_at is Meridian's clock.
        at = datetime.now(UTC)
        stem = self.directory / message.channel / f"run{message.run_id}-d{message.delivery_id}"
        if message.channel == "sms":
            stem.with_suffix(".txt").write_text(
                f"To: {message.to}\n\n{message.body}\n", encoding="utf-8"
            )
        else:
            try:
                eml = self._email(message, at).as_bytes()
            except (ValueError, TypeError):
                raise PermanentError("malformed message header") from None
            stem.with_suffix(".eml").write_bytes(eml)
        record = {
            "provider_id": provider_id,
            "channel": message.channel,
            "to": message.to,
            "run_id": message.run_id,
            "delivery_id": message.delivery_id,
            "subject": message.subject,
            "body": message.body,
            "html": message.html,
            "at": at.isoformat(),
        }
        self._append(record)
        return SendReceipt(provider_id, "sent")

    def _email(self, message: OutboundMessage, at: datetime) -> EmailMessage:
        # The same builder as the SMTP transport: the .eml is what SMTP would have sent.
        return build_email(
            message,
            sender=self.email_from,
            reply_to=self.email_reply_to,
            message_id=message_id(message, parseaddr(self.email_from)[1]),
            date=at,
        )

    def _append(self, record: dict[str, object]) -> None:
        # Several worker processes append to one log: an exclusive lock keeps lines whole.
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        with open(self.directory / LOG_NAME, "ab") as log:
            fcntl.flock(log, fcntl.LOCK_EX)
            try:
                log.write(line)
                log.flush()
                os.fsync(log.fileno())
            finally:
                fcntl.flock(log, fcntl.LOCK_UN)

    def find_sent(self, message: OutboundMessage, since: datetime) -> SeenMessage | None:
        path = self.directory / LOG_NAME
        if not path.exists():
            return None
        with open(path, encoding="utf-8") as log:
            for line in log:
                record = json.loads(line)
                if (
                    record["delivery_id"] == message.delivery_id
                    and record["channel"] == message.channel
                ):
                    return SeenMessage(
                        record["provider_id"],
                        record["to"],
                        record["body"],
                        datetime.fromisoformat(record["at"]),
                    )
        return None

    def close(self) -> None:
        """Nothing is held open between sends."""


def read_outbox(directory: Path) -> list[dict[str, object]]:
    path = directory / LOG_NAME
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as log:
        return [json.loads(line) for line in log if line.strip()]
