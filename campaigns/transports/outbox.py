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
from pathlib import Path

from campaigns.domain.models import Channel
from campaigns.domain.transport import OutboundMessage, SeenMessage, SendReceipt

LOG_NAME = "outbox.jsonl"


class OutboxTransport:
    def __init__(self, channel: Channel, directory: Path, email_from: str = "") -> None:
        self.channel = channel
        self.directory = directory
        self.email_from = email_from
        (directory / channel).mkdir(parents=True, exist_ok=True)

    def send(self, message: OutboundMessage) -> SendReceipt:
        provider_id = f"outbox-{message.channel}-{message.delivery_id}"
        stem = self.directory / message.channel / f"run{message.run_id}-d{message.delivery_id}"
        if message.channel == "sms":
            stem.with_suffix(".txt").write_text(
                f"To: {message.to}\n\n{message.body}\n", encoding="utf-8"
            )
        else:
            stem.with_suffix(".eml").write_bytes(bytes(self._email(message)))
        record = {
            "provider_id": provider_id,
            "channel": message.channel,
            "to": message.to,
            "run_id": message.run_id,
            "delivery_id": message.delivery_id,
            "subject": message.subject,
            "body": message.body,
            "html": message.html,
            # When the provider got it, on the provider's (real) clock, as a real
            # provider stamps it; the ledger's sent_at is Meridian's clock.
            "at": datetime.now(UTC).isoformat(),
        }
        self._append(record)
        return SendReceipt(provider_id, "sent")

    def _email(self, message: OutboundMessage) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.email_from
        mail["To"] = message.to
        mail["Subject"] = message.subject or ""
        if message.unsubscribe_url:
            mail["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
            mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        for name, value in message.headers.items():
            mail[name] = value
        mail.set_content(message.body)
        if message.html:
            mail.add_alternative(message.html, subtype="html")
        return mail

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
