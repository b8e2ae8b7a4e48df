"""Typed settings from MERIDIAN_* environment variables and a ``.env`` file.

Built once at the edge (CLI, worker, web start-up) and passed in; never read at
import time. An unknown MERIDIAN_* key or an invalid value stops start-up with a
message naming the key.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from campaigns.errors import ConfigError

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
    sms_smart_encoding: bool = False

    public_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr = SecretStr(_DEV_SECRET)

    clinic_name: str = "Clinic"
    clinic_address: str = ""
    clinic_phone: str = ""
    clinic_timezone: str = "America/New_York"
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

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

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
        if self.env == "production" and self.secret_key.get_secret_value() == _DEV_SECRET:
            raise ConfigError("MERIDIAN_SECRET_KEY: required in production")
        # CAN-SPAM wants the postal address in every email; texts and emails give the
        # phone to book by. Without them messages go out with blanks where they belong.
        for key, value in (
            ("MERIDIAN_CLINIC_ADDRESS", self.clinic_address),
            ("MERIDIAN_CLINIC_PHONE", self.clinic_phone),
        ):
            if self.env == "production" and not value.strip():
                raise ConfigError(f"{key}: required in production (the clinic's own)")
        if self.env == "production" and "accept" in (self.sms_transport, self.email_transport):
            key = "SMS" if self.sms_transport == "accept" else "EMAIL"
            raise ConfigError(f"MERIDIAN_{key}_TRANSPORT: 'accept' is for benchmarks only")


def _known_keys() -> set[str]:
    keys = set()
    for name, info in Settings.model_fields.items():
        keys.add(PREFIX + name.upper())
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            keys.update(str(a).upper() for a in alias.choices)
    return keys


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, naming the key of anything wrong."""
    known = _known_keys()
    unknown = sorted(
        k for k in os.environ if k.upper().startswith(PREFIX) and k.upper() not in known
    )
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown setting (known: see README, Settings)")
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
        msg = "unknown setting" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(f"{key}: {msg}") from exc
    settings.check_production()
    return settings
