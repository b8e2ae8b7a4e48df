"""One error root. Sending errors say only whether a retry can help."""

from __future__ import annotations

from dataclasses import dataclass, field


class MeridianError(Exception):
    """Root of every error Meridian raises on purpose."""


class ConfigError(MeridianError):
    """A setting is unknown or invalid; the message names the key."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, and where: file, row, column or field."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class InputError(MeridianError):
    """Bad input (a file, a field, an argument). The CLI exits 2 on it."""

    message: str
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        lines = [self.message, *(f"  {p}" for p in self.problems)]
        return "\n".join(lines)


class NotFound(MeridianError):
    """A named campaign, run or patient does not exist."""


class BrokerUnavailable(MeridianError):
    """Redis, where work waits for the workers (the broker, the due set, the schedule
    entries), did not answer: nothing was queued; try again shortly."""


class SendError(MeridianError):
    """A transport could not hand a message over.

    ``code`` is the provider's own code (Twilio error number, SMTP reply code) when
    there is one; ``reason`` is short, has no PHI in it, and lands in the ledger.
    """

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TransientError(SendError):
    """Retrying later may work: timeouts, resets, 429, 5xx, SMTP 4xx."""


class PermanentError(SendError):
    """Retrying will not help: invalid number, opted out, SMTP 5xx."""

    def __init__(
        self,
        reason: str,
        code: str | None = None,
        opted_out: bool = False,
        address_refused: bool = False,
    ) -> None:
        super().__init__(reason, code)
        self.opted_out = opted_out
        # The receiving server refused this address for good (SMTP 5xx on RCPT or DATA).
        self.address_refused = address_refused


class OutcomeUnknown(SendError):
    """The request may have reached the provider but no answer came back.

    Never retried blindly: the delivery becomes ``unknown`` and is reconciled.
    """
