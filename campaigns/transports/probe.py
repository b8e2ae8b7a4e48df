"""Do the provider credentials work? One harmless request each, for ``meridian doctor``.

Twilio: fetch the account (GET /2010-04-01/Accounts/{sid}.json) at
MERIDIAN_TWILIO_API_URL, which proves the SID and token. SMTP: open a session as a
send would (TLS, login) and say NOOP. Nothing is sent. Each returns a sentence;
a failure raises MeridianError with a sentence that carries no credential.
"""

from __future__ import annotations

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException

from campaigns.errors import MeridianError
from campaigns.settings import Settings
from campaigns.transports.smtp_email import SmtpEmailTransport
from campaigns.transports.twilio_sms import build_client


class ProbeFailed(MeridianError):
    """A provider refused the credentials, or could not be reached."""


def probe_twilio(settings: Settings) -> str:
    client = build_client(settings)
    try:
        account = client.api.v2010.accounts(settings.twilio_account_sid).fetch()
    except TwilioRestException as exc:
        raise ProbeFailed(
            f"Twilio answered {exc.status} (code {exc.code}) to the account fetch: "
            "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
        ) from None
    except (requests.RequestException, TwilioException) as exc:
        raise ProbeFailed(f"Twilio could not be reached ({type(exc).__name__})") from None
    return f"account {account.sid} is {account.status}"


def probe_smtp(settings: Settings) -> str:
    transport = SmtpEmailTransport(settings)
    try:
        code, _ = transport._connection().noop()
    except MeridianError as exc:
        raise ProbeFailed(f"SMTP session failed: {exc}") from None
    finally:
        transport.close()
    if code != 250:
        raise ProbeFailed(f"SMTP NOOP answered {code}")
    return f"{settings.smtp_host}:{settings.smtp_port} answered NOOP with 250"
