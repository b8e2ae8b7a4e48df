from __future__ import annotations

from pathlib import Path

import pytest

from campaigns.errors import ConfigError
from campaigns.settings import load_settings


def test_an_unknown_meridian_key_stops_start_up_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERIDIAN_SMS_RATES", "5")
    with pytest.raises(ConfigError, match="MERIDIAN_SMS_RATES: unknown setting"):
        load_settings(_env_file=None)


def test_an_invalid_value_stops_start_up_naming_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERIDIAN_SMS_RATE", "fast")
    with pytest.raises(ConfigError, match="MERIDIAN_SMS_RATE"):
        load_settings(_env_file=None)


def test_a_time_zone_that_is_not_iana_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERIDIAN_CLINIC_TIMEZONE", "Eastern")
    with pytest.raises(ConfigError, match="MERIDIAN_CLINIC_TIMEZONE"):
        load_settings(_env_file=None)


def test_twilio_credentials_use_twilios_own_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC123")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "s3cret")
    settings = load_settings(_env_file=None)
    assert settings.twilio_account_sid == "AC123"
    assert settings.twilio_auth_token is not None
    assert "s3cret" not in repr(settings)


def test_the_env_file_is_read_and_checked(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    env = tmp_path / ".env"
    env.write_text("MERIDIAN_SMS_RATE=3\n")
    assert load_settings(_env_file=env).sms_rate == 3
    env.write_text("MERIDIAN_SMS_RAT=3\n")
    with pytest.raises(ConfigError, match="MERIDIAN_SMS_RAT: unknown setting"):
        load_settings(_env_file=env)


def test_production_needs_a_real_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERIDIAN_ENV", "production")
    with pytest.raises(ConfigError, match="MERIDIAN_SECRET_KEY"):
        load_settings(_env_file=None)


SAFE_PRODUCTION = {
    "MERIDIAN_ENV": "production",
    "MERIDIAN_SECRET_KEY": "wKZSPFmc75Xk2A8Sn2ybCdsHA0BruQ-9tLx3vPq1",
    "MERIDIAN_CLINIC_ADDRESS": "120 Harbor Street\nBoston, MA 02110",
    "MERIDIAN_CLINIC_PHONE": "(617) 555-0142",
    "MERIDIAN_SMS_TRANSPORT": "twilio",
    "MERIDIAN_EMAIL_TRANSPORT": "smtp",
    "MERIDIAN_DATABASE_URL": "postgresql+psycopg://meridian@db/meridian",
    "MERIDIAN_PUBLIC_URL": "https://meridian.example.org",
    "TWILIO_ACCOUNT_SID": "AC0123456789abcdef0123456789abcdef",
    "TWILIO_AUTH_TOKEN": "twilio-auth-token",
    "MERIDIAN_TWILIO_FROM": "+16175550100",
    "MERIDIAN_SMTP_HOST": "smtp.example.org",
}


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key, value in SAFE_PRODUCTION.items():
        monkeypatch.setenv(key, value)
    assert load_settings(_env_file=None).env == "production"
    return monkeypatch


@pytest.mark.parametrize("missing", ["MERIDIAN_CLINIC_ADDRESS", "MERIDIAN_CLINIC_PHONE"])
def test_production_needs_the_clinics_postal_address_and_phone(
    production: pytest.MonkeyPatch, missing: str
) -> None:
    production.setenv(missing, "  ")
    with pytest.raises(ConfigError, match=f"^{missing}: required in production"):
        load_settings(_env_file=None)


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("MERIDIAN_SECRET_KEY", "a", "is 1 bytes; production needs at least 32"),
        ("MERIDIAN_SECRET_KEY", "   x", "is 4 bytes"),
        ("MERIDIAN_SECRET_KEY", "a" * 40, "too little entropy"),
        ("MERIDIAN_SECRET_KEY", "password" * 4, "too little entropy"),
        ("MERIDIAN_SMS_TRANSPORT", "outbox", "'outbox' writes files"),
        ("MERIDIAN_EMAIL_TRANSPORT", "outbox", "'outbox' writes files"),
        ("MERIDIAN_SMS_TRANSPORT", "accept", "'accept' is for benchmarks only"),
        ("MERIDIAN_EMAIL_TRANSPORT", "accept", "'accept' is for benchmarks only"),
        ("MERIDIAN_DATABASE_URL", "sqlite:///var/meridian.db", "MERIDIAN_ALLOW_SQLITE=true"),
        ("MERIDIAN_PUBLIC_URL", "http://meridian.example.org", "must be https://"),
        ("TWILIO_ACCOUNT_SID", "", "required in production when MERIDIAN_SMS_TRANSPORT=twilio"),
        ("TWILIO_AUTH_TOKEN", " ", "required in production when MERIDIAN_SMS_TRANSPORT=twilio"),
        ("MERIDIAN_TWILIO_FROM", "", "MERIDIAN_TWILIO_MESSAGING_SERVICE_SID"),
        ("MERIDIAN_SMTP_HOST", "", "required in production when MERIDIAN_EMAIL_TRANSPORT=smtp"),
        ("MERIDIAN_CLOCK_SHIFT_S", "-28800", "must be 0 in production (it is -28800)"),
    ],
)
def test_production_refuses_each_unsafe_setting_naming_its_key(
    production: pytest.MonkeyPatch, key: str, value: str, says: str
) -> None:
    production.setenv(key, value)
    with pytest.raises(ConfigError) as refused:
        load_settings(_env_file=None)
    assert str(refused.value).startswith(f"{key}: ")
    assert says in str(refused.value)


def test_sqlite_in_production_when_allowed_on_purpose(production: pytest.MonkeyPatch) -> None:
    production.setenv("MERIDIAN_DATABASE_URL", "sqlite:///var/meridian.db")
    production.setenv("MERIDIAN_ALLOW_SQLITE", "true")
    assert load_settings(_env_file=None).allow_sqlite


@pytest.mark.parametrize("env", ["development", "production"])
def test_an_empty_secret_key_is_refused_everywhere(
    production: pytest.MonkeyPatch, env: str
) -> None:
    production.setenv("MERIDIAN_ENV", env)
    production.setenv("MERIDIAN_SECRET_KEY", "  ")
    with pytest.raises(ConfigError, match=r"^MERIDIAN_SECRET_KEY: "):
        load_settings(_env_file=None)


def test_development_starts_without_the_clinics_address_and_phone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MERIDIAN_CLINIC_PHONE", raising=False)
    assert load_settings(_env_file=None).clinic_phone == ""


def test_a_messaging_service_is_sender_enough_in_production(
    production: pytest.MonkeyPatch,
) -> None:
    production.delenv("MERIDIAN_TWILIO_FROM")
    production.setenv("MERIDIAN_TWILIO_MESSAGING_SERVICE_SID", "MG0123456789abcdef")
    assert load_settings(_env_file=None).twilio_messaging_service_sid == "MG0123456789abcdef"


@pytest.mark.parametrize("key", ["MERIDIAN_TWILIO_ACCOUNT_SID", "MERIDIAN_TWILIO_AUTH_TOKEN"])
def test_a_meridian_spelling_of_twilios_keys_is_refused_naming_the_right_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: str
) -> None:
    # Only Twilio's own names are read: the MERIDIAN_ spelling would be silently
    # ignored (and a missing auth token refuses every webhook, STOP replies included).
    right = key.removeprefix("MERIDIAN_")
    monkeypatch.setenv(key, "AC123")
    with pytest.raises(ConfigError, match=f"^{key}: unknown setting; Meridian reads {right}"):
        load_settings(_env_file=None)
    monkeypatch.delenv(key)
    env = tmp_path / ".env"
    env.write_text(f"{key}=AC123\n")
    with pytest.raises(ConfigError, match=f"^{key}: unknown setting; Meridian reads {right}"):
        load_settings(_env_file=env)
