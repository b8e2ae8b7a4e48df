"""The accept transport: takes every message at once and hands it to no one.

For benchmarks only (``make bench``): it stands for a provider with no latency and
no limit, so what is measured is Meridian's own cost. It keeps no record, so
reconciliation can never find a message it took; Settings refuses it in production.
"""

from __future__ import annotations

from datetime import datetime

from campaigns.domain.models import Channel
from campaigns.domain.transport import OutboundMessage, SeenMessage, SendReceipt


class AcceptTransport:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def send(self, message: OutboundMessage) -> SendReceipt:
        return SendReceipt(f"accept-{message.channel}-{message.delivery_id}", "sent")

    def find_sent(self, message: OutboundMessage, since: datetime) -> SeenMessage | None:
        return None

    def close(self) -> None:
        """Nothing is held open."""
