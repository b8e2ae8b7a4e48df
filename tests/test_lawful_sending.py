"""Sending keeps to the lawful-time answer: the send-time check holds what is
not lawful everywhere the patient might be, the caps of every candidate state count,
and the clinic's service zones are a checked setting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from campaigns.domain.models import Batch, Recipient
from campaigns.errors import ConfigError
from campaigns.people.consent import check_send
from campaigns.sending import delivery
from campaigns.settings import US_SERVICE_ZONES, load_settings
from tests.support.factories import deliveries_by_id
from tests.support.workers import shift_into_window
from tests.test_pending import _queued, _running_run, _services


def test_a_planned_send_that_reaches_a_worker_past_the_grace_is_held_not_dropped(
    tmp_path: Path, database_url: str
) -> None:
    # 06:00 UTC is 01:00 or 02:00 in Boston, past the run's 6 hours of grace (a backlog
    # at a low rate, a run paused overnight): the message was planned lawfully, so it
    # waits for 08:00 there instead of being skipped for lateness.
    svc = _services(tmp_path, database_url, shift_into_window() - 12 * 3600)
    try:
        run_id, ids = _running_run(svc, 1)
        result = delivery.send_batch(svc, Batch(run_id, ids))
        assert result.counts == {"pending": 1}
        row = deliveries_by_id(svc, ids)[ids[0]]
        assert row["state"] == "pending"
        opens = row["next_attempt_at"].astimezone(ZoneInfo("America/New_York"))
        assert (opens.hour, opens.minute) == (8, 0)
        assert opens > svc.now()
        assert _queued(svc) == {ids[0]: row["next_attempt_at"]}
    finally:
        svc.close()


def _patient(state: str | None, phone: str) -> Recipient:
    return Recipient(
        1, "P1", "A", "B", None, phone, "America/New_York", state, None, True, None, phone
    )


def test_a_ny_patient_with_a_florida_number_is_capped_at_three_texts_a_day() -> None:
    now = datetime(2027, 10, 13, 16, tzinfo=UTC)
    three = [(run, "sms", now - timedelta(hours=run)) for run in (1, 2, 3)]
    florida = _patient("NY", "+13055550142")
    assert check_send(florida, "sms", three, now=now, cap_days=0, run_id=9) == "frequency_cap"
    assert check_send(florida, "sms", three[:2], now=now, cap_days=0, run_id=9) is None
    new_york = _patient("NY", "+12125550142")
    assert check_send(new_york, "sms", three, now=now, cap_days=0, run_id=9) is None


def test_the_clinics_service_zones_default_to_every_us_zone_and_are_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings(_env_file=None).clinic_service_zones == US_SERVICE_ZONES
    monkeypatch.setenv("MERIDIAN_CLINIC_SERVICE_ZONES", "America/New_York, America/Chicago")
    zones = load_settings(_env_file=None).clinic_service_zones
    assert zones == ("America/New_York", "America/Chicago")
    monkeypatch.setenv("MERIDIAN_CLINIC_SERVICE_ZONES", "America/New_York,America/Gotham")
    with pytest.raises(ConfigError, match=r"MERIDIAN_CLINIC_SERVICE_ZONES.*America/Gotham"):
        load_settings(_env_file=None)
    monkeypatch.setenv("MERIDIAN_CLINIC_SERVICE_ZONES", " , ")
    with pytest.raises(ConfigError, match="MERIDIAN_CLINIC_SERVICE_ZONES"):
        load_settings(_env_file=None)
