from __future__ import annotations

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


@pytest.mark.parametrize("missing", ["MERIDIAN_CLINIC_ADDRESS", "MERIDIAN_CLINIC_PHONE"])
def test_production_needs_the_clinics_postal_address_and_phone(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.setenv("MERIDIAN_ENV", "production")
    monkeypatch.setenv("MERIDIAN_SECRET_KEY", "a-real-secret-for-this-test")
    monkeypatch.setenv("MERIDIAN_CLINIC_ADDRESS", "120 Harbor Street\nBoston, MA 02110")
    monkeypatch.setenv("MERIDIAN_CLINIC_PHONE", "(617) 555-0142")
    assert load_settings(_env_file=None).clinic_phone == "(617) 555-0142"
    monkeypatch.setenv(missing, "  ")
    with pytest.raises(ConfigError, match=f"^{missing}: required in production"):
        load_settings(_env_file=None)


def test_development_starts_without_the_clinics_address_and_phone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MERIDIAN_CLINIC_PHONE", raising=False)
    assert load_settings(_env_file=None).clinic_phone == ""
