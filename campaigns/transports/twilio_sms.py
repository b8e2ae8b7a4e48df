"""SMS through Twilio's Messages API, on the official ``twilio`` client.

This module is the one place where Twilio's errors become Meridian's: a reply
Twilio gave decides between TransientError and PermanentError by its HTTP status
and Twilio error code; a network failure decides by whether the request could
have reached Twilio. Only a request that certainly never left (refused, DNS,
connect timeout) is transient; a read timeout or a connection dropped after
sending is OutcomeUnknown, because the Messages API has no idempotency key and
the message may already be on its way.

Nothing here logs or raises a phone number or a message body. The SDK's own
messages and request URLs quote them, so SDK and ``requests`` exceptions are
never chained onto ours; reasons are short words and codes. (urllib3 logs request
URLs, query included, at DEBUG: logging set-up keeps ``urllib3`` at INFO or above.)
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import MaxRetryError, NewConnectionError

from campaigns.domain.states import Channel
from campaigns.domain.transport import OutboundMessage, SeenMessage, SendReceipt
from campaigns.errors import (
    ConfigError,
    OutcomeUnknown,
    PermanentError,
    SendError,
    TransientError,
)
from campaigns.settings import Settings

_log = logging.getLogger(__name__)

TWILIO_API_URL = "https://api.twilio.com"
STATUS_CALLBACK_PATH = "/twilio/status"

# Twilio error codes that say something about the recipient, not the request.
_OPTED_OUT = 21610
_RECIPIENT_CODES = {21211: "invalid number", 21614: "not a mobile number"}
_RATE_LIMITED = 20429

# Reconciliation reads at most this many messages to one number, newest first.
_FIND_PAGE_SIZE = 200
_FIND_LIMIT = 1000
# Twilio stamps date_created to the second, on its own clock.
_CLOCK_SKEW = timedelta(seconds=60)
_NEVER_SENT = (
    requests.exceptions.ProxyError,
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
)


class MeridianHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio is untyped
    """Twilio's requests-based client with a timeout, a base URL, and quiet logs.

    ``api_url`` replaces the scheme and host of every URL the SDK builds (the
    SDK hard-codes https://api.twilio.com in each domain, and paging follows
    absolute URLs built from it), so one setting redirects all requests, paging
    included, to a local Twilio-compatible server.
    """

    def __init__(self, api_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout, logger=_log)
        base = api_url.rstrip("/")
        self._base = None if base == TWILIO_API_URL else urlsplit(base)

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Any:
        return super().request(
            method,
            self.redirect(url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )

    def redirect(self, url: str) -> str:
        if self._base is None:
            return url
        parts = urlsplit(url)
        path = self._base.path.rstrip("/") + parts.path
        return urlunsplit((self._base.scheme, self._base.netloc, path, parts.query, ""))

    def log_request(self, kwargs: dict[str, Any]) -> None:
        # The SDK logs query parameters (a list's To= is a phone number): log the path only.
        _log.debug("twilio request %s %s", kwargs["method"], urlsplit(kwargs["url"]).path)

    def log_response(self, status_code: int, response: Any) -> None:
        _log.debug("twilio replied %s", status_code)


def build_client(settings: Settings) -> Any:
    """A ``twilio.rest.Client`` from settings: timeout on every request, MERIDIAN_TWILIO_API_URL."""
    if not settings.twilio_account_sid or settings.twilio_auth_token is None:
        raise ConfigError(
            "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN: both are required for the twilio transport"
        )
    scheme = urlsplit(settings.twilio_api_url).scheme
    if scheme not in ("http", "https"):
        raise ConfigError(
            f"MERIDIAN_TWILIO_API_URL: expected an http(s) URL, got scheme {scheme!r}"
        )
    http_client = MeridianHttpClient(settings.twilio_api_url, settings.twilio_timeout_s)
    return Client(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        http_client=http_client,
    )


class TwilioSmsTransport:
    """Sends one SMS per call through Twilio; asks Twilio what it accepted."""

    channel: Channel = "sms"

    def __init__(self, settings: Settings) -> None:
        if settings.twilio_from:
            self._sender = {"from_": settings.twilio_from}
        elif settings.twilio_messaging_service_sid:
            self._sender = {"messaging_service_sid": settings.twilio_messaging_service_sid}
        else:
            raise ConfigError(
                "MERIDIAN_TWILIO_FROM or MERIDIAN_TWILIO_MESSAGING_SERVICE_SID: "
                "one is required for the twilio transport"
            )
        self._client = build_client(settings)
        self._http: MeridianHttpClient = self._client.http_client
        # The SDK imports its API modules on first use: about 45 ms that would otherwise
        # fall between a worker's first rate-limiter slot and its text reaching Twilio.
        self._messages = self._client.messages
        self._status_callback = f"{settings.public_url}{STATUS_CALLBACK_PATH}"

    def send(self, message: OutboundMessage) -> SendReceipt:
        try:
            created = self._messages.create(
                to=message.to,
                body=message.body,
                status_callback=self._status_callback,
                **self._sender,
            )
        except requests.RequestException as exc:
            error = _network_error(exc)
        except TwilioException as exc:
            error = _sdk_error(exc)
        except ValueError:
            # A 2xx whose body is not JSON (cut short?): Twilio answered, so it
            # may well have accepted the message.
            error = OutcomeUnknown("unreadable reply")
        else:
            sid: str = created.sid
            status: str = created.status or "queued"
            _log.debug("delivery %s accepted by twilio as %s", message.delivery_id, sid)
            return SendReceipt(provider_id=sid, status=status)
        if isinstance(error, OutcomeUnknown):
            _log.warning(
                "delivery %s: no answer from twilio after sending (%s); "
                "left for reconciliation, not resent",
                message.delivery_id,
                error.reason,
            )
        raise error  # raised outside the except blocks: no SDK exception in its context

    def find_sent(self, message: OutboundMessage, since: datetime) -> SeenMessage | None:
        """The message to ``message.to`` with exactly this body, created since ``since``.

        Lists by recipient only and filters on ``date_created`` here rather than
        asking Twilio for ``DateSent>``: a message Twilio accepted but still holds
        in its queue has no date_sent yet, and missing it would mean a duplicate.
        """
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        floor = since - _CLOCK_SKEW
        try:
            for record in self._messages.stream(
                to=message.to, page_size=_FIND_PAGE_SIZE, limit=_FIND_LIMIT
            ):
                created = record.date_created
                if (
                    record.body == message.body
                    and isinstance(created, datetime)
                    and created >= floor
                ):
                    return SeenMessage(
                        provider_id=record.sid, to=record.to, body=record.body, created_at=created
                    )
        except (requests.RequestException, TwilioException, ValueError) as exc:
            status, code = getattr(exc, "status", None), getattr(exc, "code", None)
            code_text = _code(status, code) if isinstance(status, int) else None
            raise TransientError("lookup failed", code=code_text) from None
        return None

    def close(self) -> None:
        """Drop pooled keep-alive connections; the next request opens a new one."""
        self._http.session.close()


def _code(status: int, code: int | str | None) -> str:
    return str(code if code is not None else status)


def _sdk_error(exc: TwilioException) -> SendError:
    """An error reply the SDK raised: TwilioRestException, or the RFC 9457 kind."""
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return _reply_error(status, getattr(exc, "code", None))
    return OutcomeUnknown("unreadable reply")


def _reply_error(status: int, code: int | str | None) -> SendError:
    """Map an HTTP error reply from Twilio (status, Twilio error code) to our errors."""
    number = int(code) if isinstance(code, int | str) and str(code).isdigit() else None
    code_text = _code(status, code)
    if number == _OPTED_OUT:
        return PermanentError("recipient opted out", code=code_text, opted_out=True)
    if number in _RECIPIENT_CODES:
        # The number itself is refused for good: it is suppressed (campaigns.people.bounces).
        return PermanentError(_RECIPIENT_CODES[number], code=code_text, address_refused=True)
    if status == 429 or number == _RATE_LIMITED:
        return TransientError("rate limited", code=code_text)
    if status == 504:
        # A gateway that timed out waiting for Twilio's API cannot say whether the
        # API took the message: the one 5xx that is not safe to resend.
        return OutcomeUnknown("gateway timeout", code=code_text)
    if status >= 500:
        return TransientError("twilio error", code=code_text)
    if status == 401:
        return PermanentError("authentication failed", code=code_text)
    if 400 <= status < 500:
        return PermanentError("rejected", code=code_text)
    return OutcomeUnknown("unexpected reply", code=code_text)


def _network_error(exc: requests.RequestException) -> SendError:
    """Transient if the request certainly never reached Twilio, else OutcomeUnknown."""
    if isinstance(exc, requests.ConnectTimeout):
        return TransientError("connect timeout")
    if isinstance(exc, requests.ReadTimeout):
        return OutcomeUnknown("read timeout")
    if isinstance(exc, _NEVER_SENT):
        # The proxy refused us, or the URL could not be built: nothing went out.
        return TransientError("connection failed")
    if isinstance(exc, requests.exceptions.SSLError):
        # Raised for a failed handshake but also for a TLS error while reading
        # the reply, so it cannot prove the request was not sent.
        return OutcomeUnknown("tls error")
    if isinstance(exc, requests.ConnectionError):
        cause = exc.args[0] if exc.args else None
        if isinstance(cause, MaxRetryError) and isinstance(cause.reason, NewConnectionError):
            # Refused, unreachable or unresolvable: no connection, so no request.
            return TransientError("connection refused")
        return OutcomeUnknown("connection dropped")
    return OutcomeUnknown("network error")
