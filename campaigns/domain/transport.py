"""The Transport protocol every channel adapter implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from campaigns.domain.states import Channel


@dataclass(frozen=True)
class OutboundMessage:
    """One rendered message, ready to hand over. Holds PHI: never log it."""

    delivery_id: int
    run_id: int
    channel: Channel
    to: str
    body: str  # SMS text, or the email's plain-text part
    subject: str | None = None
    html: str | None = None
    unsubscribe_url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendReceipt:
    """What the provider said: its id for the message, and its first status."""

    provider_id: str
    status: str = "sent"


@dataclass(frozen=True)
class SeenMessage:
    """A message the provider reports having accepted (for reconciliation)."""

    provider_id: str
    to: str
    body: str
    created_at: datetime


class Transport(Protocol):
    channel: Channel

    def send(self, message: OutboundMessage) -> SendReceipt:
        """Hand one message over.

        Raises TransientError (retry may help), PermanentError (it will not) or
        OutcomeUnknown (the request may have been accepted; never resend blindly).
        """
        ...

    def find_sent(self, message: OutboundMessage, since: datetime) -> SeenMessage | None:
        """Ask the provider whether this message was accepted since ``since``.

        Returns None when the provider has no record of it; raises TransientError
        when the provider cannot be asked now.
        """
        ...

    def close(self) -> None:
        """Release connections held between sends (one per batch for SMTP)."""
        ...
