"""Email over SMTP with smtplib: one connection per batch, reused until close().

Reply codes decide retries: 4xx is TransientError, 5xx PermanentError; a 5xx to RCPT
or DATA refuses the address (``address_refused``), which suppresses it. Each message's
envelope sender is its delivery's VERP address (campaigns.people.verp), so a later
bounce names the delivery. A
connection that fails is harder, because SMTP, like Twilio, has no idempotency
key. The server takes responsibility for a message when it has read the
end-of-data marker (RFC 5321 section 4.1.1.4); the 250 that says so can still be
lost on the way back (RFC 1047). So a connection that drops or times out:

- before the server's 354 answer to DATA: nothing could have been accepted, since
  the body was not sent: TransientError, retry;
- after the 354 (the body, then the marker, were being sent): the server may have
  queued the message: OutcomeUnknown, never resent blindly.

After any error the connection is thrown away and the next send opens a new one.
A connection that the server closed while idle between sends fails before MAIL
is answered: that send reconnects once at once, as no message data has moved.

Nothing here logs or raises an address, a subject or a body: smtplib's
exceptions quote recipients, so they are not chained onto ours (``from None``).
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parseaddr

from campaigns.domain.states import Channel
from campaigns.domain.transport import OutboundMessage, SeenMessage, SendReceipt
from campaigns.errors import (
    ConfigError,
    OutcomeUnknown,
    PermanentError,
    SendError,
    TransientError,
)
from campaigns.people import verp
from campaigns.settings import Settings
from campaigns.transports.mime import build_email, message_id

_log = logging.getLogger(__name__)

_DATA_GO_AHEAD = 354


class _SMTP(smtplib.SMTP):
    """smtplib.SMTP that remembers the last reply code it read."""

    last_code = 0

    def getreply(self) -> tuple[int, bytes]:
        code, text = super().getreply()
        self.last_code = code
        return code, text


class _SMTPSSL(_SMTP, smtplib.SMTP_SSL):
    """Implicit TLS (smtps, port 465) with the same reply tracking."""


class SmtpEmailTransport:
    """Sends multipart email through one reused SMTP connection."""

    channel: Channel = "email"

    def __init__(self, settings: Settings) -> None:
        if not settings.smtp_host:
            raise ConfigError("MERIDIAN_SMTP_HOST: required for the smtp email transport")
        from_address = parseaddr(settings.email_from)[1]
        if "@" not in from_address:
            raise ConfigError(
                f"MERIDIAN_EMAIL_FROM: {settings.email_from!r} has no address "
                "(expected like 'Clinic <clinic@example.org>')"
            )
        self._settings = settings
        self._host = settings.smtp_host
        self._from_address = from_address
        self._bounce = verp.bounce_base(settings.bounce_address, settings.email_from)
        self._conn: _SMTP | None = None

    def send(self, message: OutboundMessage) -> SendReceipt:
        email = self._build(message)
        envelope = verp.return_path(
            self._settings.secret_key.get_secret_value(), message.delivery_id, *self._bounce
        )
        try:
            try:
                self._transmit(email, message.to, envelope)
            except _StaleConnectionError:
                _log.info("smtp connection was closed by the server while idle; reconnecting")
                self._transmit(email, message.to, envelope)  # a new one cannot be stale
        except SendError as error:
            self._log_failure(message.delivery_id, error)
            raise
        _log.debug("delivery %s accepted by smtp server", message.delivery_id)
        return SendReceipt(provider_id=str(email["Message-ID"]), status="sent")

    def find_sent(self, message: OutboundMessage, since: datetime) -> SeenMessage | None:
        """Always None: SMTP cannot be asked what it accepted.

        A server's acceptance exists only as the 250 reply on the connection
        that sent it; there is no later lookup. An unknown outcome therefore
        reconciles to "not seen", and a resend carries the same Message-ID,
        which lets receiving systems and mail clients fold the two copies.
        """
        return None

    def close(self) -> None:
        """Say QUIT and close the batch's connection, if one is open."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()

    # -- internals -----------------------------------------------------------

    def _transmit(self, email: EmailMessage, to: str, envelope: str) -> None:
        """One MAIL/RCPT/DATA transaction; raises SendError or _StaleConnectionError."""
        reused = self._conn is not None
        conn = self._connection()
        conn.last_code = 0
        try:
            conn.send_message(email, from_addr=envelope, to_addrs=[to])
        except smtplib.SMTPRecipientsRefused as exc:
            self._discard()
            codes = [code for code, _ in exc.recipients.values()]
            raise _reply_error(codes[0] if codes else 550, "recipient refused", True) from None
        except smtplib.SMTPSenderRefused as exc:
            self._discard()
            raise _reply_error(exc.smtp_code, "sender refused") from None
        except smtplib.SMTPDataError as exc:
            self._discard()
            raise _reply_error(exc.smtp_code, "message refused", True) from None
        except smtplib.SMTPResponseException as exc:
            self._discard()
            raise _reply_error(exc.smtp_code, "refused") from None
        except smtplib.SMTPNotSupportedError:
            self._discard()
            raise PermanentError("server lacks SMTPUTF8") from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            stage = conn.last_code
            self._discard()
            if stage == _DATA_GO_AHEAD:
                raise OutcomeUnknown(_dropped(exc, "after data")) from None
            if stage == 0 and reused:
                raise _StaleConnectionError from None
            raise TransientError(_dropped(exc, "before data")) from None
        except smtplib.SMTPException:
            self._discard()
            raise TransientError("smtp error") from None

    def _connection(self) -> _SMTP:
        if self._conn is not None:
            return self._conn
        settings = self._settings
        conn: _SMTP | None = None
        try:
            if settings.smtp_ssl:
                context = ssl.create_default_context()
                conn = _SMTPSSL(
                    self._host, settings.smtp_port, timeout=settings.smtp_timeout_s, context=context
                )
            else:
                conn = _SMTP(self._host, settings.smtp_port, timeout=settings.smtp_timeout_s)
            conn.ehlo()
            if settings.smtp_starttls and not settings.smtp_ssl:
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if settings.smtp_username:
                password = settings.smtp_password
                conn.login(settings.smtp_username, password.get_secret_value() if password else "")
        except smtplib.SMTPNotSupportedError:
            _close_quietly(conn)
            raise PermanentError("server lacks STARTTLS or AUTH") from None
        except smtplib.SMTPResponseException as exc:
            # A refused greeting, EHLO, STARTTLS or AUTH (535: wrong password).
            _close_quietly(conn)
            raise _reply_error(exc.smtp_code, "session refused") from None
        except (smtplib.SMTPException, OSError) as exc:
            # Refused, unreachable, timed out, TLS failed: no message was sent.
            _close_quietly(conn)
            raise TransientError(_connect_failure(exc)) from None
        _log.debug("smtp connection opened to %s:%s", self._host, settings.smtp_port)
        self._conn = conn
        return conn

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        _close_quietly(conn)

    def _build(self, message: OutboundMessage) -> EmailMessage:
        settings = self._settings
        try:
            return build_email(
                message,
                sender=settings.email_from,
                reply_to=settings.email_reply_to,
                message_id=message_id(message, self._from_address),
                # Real time, not Meridian's (possibly shifted) clock: mail servers read
                # it next to the relay's own Received times.
                date=datetime.now(UTC),
            )
        except (ValueError, TypeError):
            # A header with a line break in it, or an address the parser refuses.
            raise PermanentError("malformed message header") from None

    @staticmethod
    def _log_failure(delivery_id: int, error: SendError) -> None:
        if isinstance(error, OutcomeUnknown):
            _log.warning(
                "delivery %s: smtp connection lost after the message was sent (%s); "
                "left for reconciliation, not resent",
                delivery_id,
                error.reason,
            )


class _StaleConnectionError(Exception):
    """The connection died before the server answered MAIL: safe to redo at once."""


def _reply_error(code: int, what: str, address: bool = False) -> SendError:
    """4xx: retry; 5xx: for good, and on RCPT or DATA (``address``) the address is
    refused, which suppresses it."""
    text = f"{what} ({code})"
    if 400 <= code < 500:
        return TransientError(text, code=str(code))
    if 500 <= code < 600:
        return PermanentError(text, code=str(code), address_refused=address)
    return TransientError(f"{what}: unexpected reply ({code})", code=str(code))


def _dropped(exc: BaseException, when: str) -> str:
    # smtplib turns a socket timeout into SMTPServerDisconnected raised while handling it.
    timed_out = isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError)
    return f"{'timeout' if timed_out else 'connection dropped'} {when}"


def _connect_failure(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return "tls failed"
    return _dropped(exc, "connecting")


def _close_quietly(conn: smtplib.SMTP | None) -> None:
    if conn is not None:
        with contextlib.suppress(OSError):
            conn.close()
