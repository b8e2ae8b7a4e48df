"""Typed settings from MERIDIAN_* environment variables and a ``.env`` file.

Built once at the edge (CLI, worker, web start-up) and passed in; never read at
import time. An unknown MERIDIAN_* key or an invalid value stops start-up with a
message naming the key.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from campaigns.errors import ConfigError

# Every US zone from Hawaii to the East Coast: the default MERIDIAN_CLINIC_SERVICE_ZONES.
US_SERVICE_ZONES = (
    "Pacific/Honolulu",
    "America/Adak",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Phoenix",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
)

PREFIX = "MERIDIAN_"
_DEV_SECRET = "dev-only-not-secret"  # noqa: S105 - refused outside development


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
        case_sensitive=False,
        validate_default=True,
    )

    env: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite:///var/meridian.db"
    allow_sqlite: bool = False  # production on SQLite only when said on purpose
    redis_url: str = "redis://127.0.0.1:6379/0"
    templates_dir: Path = Path("templates")

    sms_transport: Literal["outbox", "twilio", "accept"] = "outbox"
    email_transport: Literal["outbox", "smtp", "accept"] = "outbox"
    outbox_dir: Path = Path("var/outbox")

    twilio_account_sid: str | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_ACCOUNT_SID", "twilio_account_sid")
    )
    twilio_auth_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_AUTH_TOKEN", "twilio_auth_token")
    )
    twilio_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_url: str = "https://api.twilio.com"
    twilio_timeout_s: float = Field(default=10.0, gt=0)

    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_ssl: bool = False
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    email_from: str = "Clinic <clinic@example.org>"
    email_reply_to: str | None = None

    # Messages per second for the whole account, shared by every worker; 0 means no
    # limit (a relay or benchmark transport that takes whatever it is given).
    sms_rate: float = Field(default=1.0, ge=0)
    sms_burst: int = Field(default=1, ge=1)
    email_rate: float = Field(default=10.0, ge=0)
    email_burst: int = Field(default=10, ge=1)
    # How late a send may reach the provider after the limiter granted it (a busy
    # machine, the network) and still keep every second within the rate: grants are
    # spaced so that a second's worth takes a second plus this (sending.ratelimit;
    # with a burst of 1: a burst lets that many through at once after idling).
    rate_jitter_ms: float = Field(default=30.0, ge=0, lt=1000)
    sms_smart_encoding: bool = False

    public_url: str = "http://127.0.0.1:8000"
    # A next appointment booked within this many days after a delivery was sent is
    # counted as that delivery's run's booking.
    booking_window_days: int = Field(default=14, ge=1, le=365)
    # How many proxies in front of the web app set X-Forwarded-For/-Proto (the TLS
    # proxy: 1). 0 ignores the headers: anyone could forge them.
    trusted_proxies: int = Field(default=0, ge=0, le=10)
    secret_key: SecretStr = SecretStr(_DEV_SECRET)

    clinic_name: str = "Clinic"
    clinic_address: str = ""
    clinic_phone: str = ""
    clinic_timezone: str = "America/New_York"
    # Where a patient with no zone, state or area code on file might be: their
    # messages go only at hours lawful in every one (campaigns.clock.whereabouts).
    # Comma-separated IANA zones; the default is every US zone, Hawaii to the East.
    clinic_service_zones: Annotated[tuple[str, ...], NoDecode] = US_SERVICE_ZONES
    default_region: str = "US"

    # Deliveries per send task; each task pays a claim, a check of the run and a
    # message on the queue, so 500 sends about twice as fast as 100 (make bench).
    batch_size: int = Field(default=500, ge=1, le=10_000)
    # The sweeper (campaigns.sending.sweeper). A claim older than claim_timeout_s belongs to
    # a dead worker; it must stay well above one provider timeout plus a second of
    # sending, or a live worker's claim could be reconciled while it still sends.
    claim_timeout_s: float = Field(default=120.0, ge=5)
    sweep_interval_s: float = Field(default=30.0, gt=0)
    requeue_after_s: float = Field(default=60.0, ge=1)
    # An email of how many patient replies wait in the inbox (counts and a link, no
    # message), at most every inbox_digest_interval_s, when new ones arrived.
    inbox_digest_to: str | None = None
    inbox_digest_interval_s: float = Field(default=3600.0, ge=60)
    # A queue no worker has reported consuming for this long is unattended: a run with
    # due work says so (run page, `runs show`, beat's log), and /readyz fails. Workers
    # report every 2 s; beats on every tick (1 s).
    worker_silence_s: float = Field(default=30.0, ge=5)
    # Bounces. The envelope sender of each email is bounces+<signed delivery
    # token>@<domain> (VERP): a bounce names its delivery without an address in clear.
    # Unset: the domain of MERIDIAN_EMAIL_FROM (and the local part "bounces").
    bounce_address: str | None = None
    # A mailbox bounces and complaint reports arrive in: imaps://user:pass@host:993/INBOX
    # or imap://… (STARTTLS when the server offers it; plain only on 127.0.0.1).
    bounce_imap_url: SecretStr | None = None
    bounce_imap_interval_s: float = Field(default=300.0, ge=30)
    # Where processed reports are moved; unset: they are only marked \Seen.
    bounce_imap_done_folder: str | None = None
    # Soft bounces (4.x.x) to one address before it is suppressed.
    soft_bounces_to_suppress: int = Field(default=3, ge=1, le=100)
    # Mailgun's HTTP webhook signing key; unset: /webhooks/mailgun refuses everything.
    mailgun_webhook_key: SecretStr | None = None
    # Bearer token of /metrics (Prometheus' `authorization` option); unset: /metrics is off.
    metrics_token: SecretStr | None = None
    # Approval: a different staff member from the one who submitted must approve.
    approval_two_person: bool = True
    # Test sends each staff member may make per hour (a test goes to their own phone
    # or email, through the real provider, and costs what a message costs).
    test_sends_per_hour: int = Field(default=10, ge=1, le=1000)
    # Log lines: text or one JSON object a line; the level (default: INFO for the web
    # app, worker and beat, WARNING for the CLI).
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = None

    # Shifts Meridian's clock for rehearsals and the demo; 0 in production.
    clock_shift_s: float = 0.0

    @field_validator("clinic_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone name") from exc
        return value

    @field_validator("clinic_service_zones", mode="before")
    @classmethod
    def _zone_list(cls, value: object) -> object:
        names = value.split(",") if isinstance(value, str) else value
        if not isinstance(names, list | tuple):
            return value
        zones = tuple(str(n).strip() for n in names if str(n).strip())
        if not zones:
            raise ValueError("name at least one IANA time zone, e.g. America/New_York")
        for name in zones:
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"{name!r} is not an IANA time zone name") from exc
        return zones

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("secret_key")
    @classmethod
    def _a_key(cls, value: SecretStr) -> SecretStr:
        # An empty key signs sessions and unsubscribe links that anyone can forge.
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty; leave it unset in development")
        return value

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _claims_outlive_a_send(self) -> Settings:
        timeouts = [
            self.twilio_timeout_s if self.sms_transport == "twilio" else 0.0,
            self.smtp_timeout_s if self.email_transport == "smtp" else 0.0,
        ]
        if self.claim_timeout_s < 2 * max(timeouts) + 5:
            raise ValueError(
                f"MERIDIAN_CLAIM_TIMEOUT_S ({self.claim_timeout_s:g}) must be at least twice the "
                f"provider timeout plus 5 s ({2 * max(timeouts) + 5:g}), or a live "
                "worker's claim could be reconciled while it is still sending"
            )
        return self

    @property
    def clock_shift(self) -> timedelta:
        return timedelta(seconds=self.clock_shift_s)

    def check_production(self) -> None:
        """Refuse to start production on a setting that is unsafe there, naming each key."""
        if self.env != "production":
            return
        problems = [
            f"{key}: {reason}" for key, reason in _production_problems(self) if reason is not None
        ]
        if problems:
            raise ConfigError("\n".join(problems))


# A key of 32 bytes or more that is not a phrase or a repeat: secrets.token_urlsafe(48)
# passes, "a" * 40 and "password" * 4 do not (too few distinct characters, or too
# little entropy by their frequencies: under 3 bits a character or 100 bits in all).
_MIN_KEY_BYTES = 32
_MIN_KEY_BITS = 100.0
_MIN_KEY_BITS_PER_CHAR = 3.0
_NEW_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"


def _secret_key_problem(key: str) -> str | None:
    if key == _DEV_SECRET or not key.strip():
        return f"required in production; make one with {_NEW_KEY}"
    if len(key.encode()) < _MIN_KEY_BYTES:
        return (
            f"is {len(key.encode())} bytes; production needs at least {_MIN_KEY_BYTES}: "
            f"make one with {_NEW_KEY}"
        )
    counts = Counter(key)
    per_char = -sum(n / len(key) * math.log2(n / len(key)) for n in counts.values())
    if per_char < _MIN_KEY_BITS_PER_CHAR or per_char * len(key) < _MIN_KEY_BITS:
        return f"has too little entropy (a phrase or a repeat?); make one with {_NEW_KEY}"
    return None


def _production_problems(s: Settings) -> list[tuple[str, str | None]]:
    # CAN-SPAM wants the postal address in every email; texts and emails give the
    # phone to book by. Without them messages go out with blanks where they belong.
    not_for_production = {
        "outbox": "'outbox' writes files instead of sending; use 'twilio' or 'smtp'",
        "accept": "'accept' is for benchmarks only; use 'twilio' or 'smtp'",
    }
    sqlite = s.database_url.startswith("sqlite")
    twilio = s.sms_transport == "twilio"
    token = s.twilio_auth_token.get_secret_value() if s.twilio_auth_token is not None else ""
    return [
        ("MERIDIAN_SECRET_KEY", _secret_key_problem(s.secret_key.get_secret_value())),
        ("MERIDIAN_CLINIC_ADDRESS", None if s.clinic_address.strip() else _CLINIC_OWN),
        ("MERIDIAN_CLINIC_PHONE", None if s.clinic_phone.strip() else _CLINIC_OWN),
        ("MERIDIAN_SMS_TRANSPORT", not_for_production.get(s.sms_transport)),
        ("MERIDIAN_EMAIL_TRANSPORT", not_for_production.get(s.email_transport)),
        (
            "MERIDIAN_DATABASE_URL",
            "SQLite in production needs MERIDIAN_ALLOW_SQLITE=true (one host, one "
            "writer at a time); PostgreSQL is the production database"
            if sqlite and not s.allow_sqlite
            else None,
        ),
        (
            "MERIDIAN_PUBLIC_URL",
            None
            if s.public_url.startswith("https://")
            else f"must be https:// in production (it is {s.public_url!r}): links in "
            "messages and the console's cookies travel over it",
        ),
        # Without the token every Twilio webhook is refused: STOP replies are lost.
        (
            "TWILIO_ACCOUNT_SID",
            _NEEDED_BY_TWILIO if twilio and _blank(s.twilio_account_sid) else None,
        ),
        ("TWILIO_AUTH_TOKEN", _NEEDED_BY_TWILIO if twilio and not token.strip() else None),
        (
            "MERIDIAN_TWILIO_FROM",
            "MERIDIAN_SMS_TRANSPORT=twilio needs a sender: MERIDIAN_TWILIO_FROM or "
            "MERIDIAN_TWILIO_MESSAGING_SERVICE_SID"
            if twilio and _blank(s.twilio_from) and _blank(s.twilio_messaging_service_sid)
            else None,
        ),
        (
            "MERIDIAN_SMTP_HOST",
            "required in production when MERIDIAN_EMAIL_TRANSPORT=smtp"
            if s.email_transport == "smtp" and _blank(s.smtp_host)
            else None,
        ),
        (
            "MERIDIAN_CLOCK_SHIFT_S",
            None
            if s.clock_shift_s == 0
            else f"must be 0 in production (it is {s.clock_shift_s:g}): a shifted clock "
            "times every message and stamps every record wrong",
        ),
    ]


_NEEDED_BY_TWILIO = "required in production when MERIDIAN_SMS_TRANSPORT=twilio"


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


_CLINIC_OWN = "required in production (the clinic's own)"


def _known_keys() -> set[str]:
    keys: set[str] = set()
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            # Read only under its alias (Twilio's own name): the MERIDIAN_ spelling
            # would be ignored, so it is not a known key (see _read_as).
            keys.update(str(a).upper() for a in alias.choices)
        else:
            keys.add(PREFIX + name.upper())
    return keys


def _read_as() -> dict[str, str]:
    """MERIDIAN_ spellings of the settings read under another name -> that name."""
    return {
        PREFIX + name.upper(): str(info.validation_alias.choices[0]).upper()
        for name, info in Settings.model_fields.items()
        if isinstance(info.validation_alias, AliasChoices)
    }


def _unknown(key: str) -> ConfigError:
    right = _read_as().get(key.upper())
    if right is not None:
        return ConfigError(f"{key}: unknown setting; Meridian reads {right} (Twilio's own name)")
    return ConfigError(f"{key}: unknown setting (known: see README, Settings)")


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, naming the key of anything wrong."""
    known = _known_keys()
    unknown = sorted(
        k for k in os.environ if k.upper().startswith(PREFIX) and k.upper() not in known
    )
    if unknown:
        raise _unknown(unknown[0])
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:  # a check across fields names its key in the message
            raise ConfigError(str(first["msg"]).removeprefix("Value error, ")) from exc
        field = str(first["loc"][0])
        key = field.upper()
        if not key.startswith(("TWILIO_", PREFIX)):
            key = PREFIX + key
        if first["type"] == "extra_forbidden":  # from the .env file
            raise _unknown(key) from exc
        raise ConfigError(f"{key}: {first['msg']}") from exc
    settings.check_production()
    return settings
