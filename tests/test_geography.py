"""Where a patient is: zone and state, stored or from the area code (campaigns.clock.geography)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from campaigns.clock import geography
from campaigns.clock.geography import patient_state, patient_zone, state_from_description
from campaigns.errors import InputError

NEW_YORK = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
HONOLULU = ZoneInfo("Pacific/Honolulu")


# -- where the patient is ------------------------------------------------------------


def test_patient_zone_comes_from_the_area_code() -> None:
    assert patient_zone(None, "+12125550123", "UTC") == NEW_YORK
    assert patient_zone("", "+18085550123", "UTC") == HONOLULU


def test_the_patients_own_zone_wins_over_the_area_code() -> None:
    assert patient_zone("America/Chicago", "+12125550123", "UTC") == CHICAGO


def test_patient_zone_falls_back_when_the_area_code_spans_zones() -> None:
    # 208 (Idaho) is Boise or Los Angeles; toll-free 800 is anywhere.
    assert patient_zone(None, "+12085550123", "America/Denver") == ZoneInfo("America/Denver")
    assert patient_zone(None, "+18005550123", "America/Denver") == ZoneInfo("America/Denver")
    assert patient_zone(None, None, "America/Denver") == ZoneInfo("America/Denver")


def test_candidate_zones_agree_only_when_their_clocks_never_differ() -> None:
    assert geography._zones_agree(("America/New_York", "America/Toronto"), 2027)
    assert not geography._zones_agree(("America/Boise", "America/Los_Angeles"), 2027)
    # Same offsets all winter, but Phoenix skips daylight time.
    assert not geography._zones_agree(("America/Denver", "America/Phoenix"), 2027)


def test_an_unknown_zone_name_is_an_error_not_a_guess() -> None:
    with pytest.raises(InputError, match="not an IANA time zone"):
        patient_zone("America/Gotham", "+12125550123", "UTC")


def test_patient_state_comes_from_the_area_code() -> None:
    assert patient_state(None, "+13055550123") == "FL"  # geocoded "Florida"
    assert patient_state(None, "+12135550123") == "CA"  # geocoded "Los Angeles, CA"
    assert patient_state(None, "+17875550123") == "PR"


def test_the_patients_own_state_wins_and_is_normalised() -> None:
    assert patient_state("tx", "+13055550123") == "TX"
    assert patient_state("Rhode Island", None) == "RI"


def test_patient_state_is_none_outside_the_us() -> None:
    assert patient_state(None, "+14165550123") is None  # Toronto
    assert patient_state(None, None) is None


def _geocoded_state(phone: str) -> str | None:
    """What the geocoder itself says, the way Meridian read it before the table."""
    import phonenumbers
    from phonenumbers import geocoder  # here: only these tests pay for its 100 MB

    number = phonenumbers.parse(phone, None)
    region = phonenumbers.region_code_for_number(number)
    if region in {"AS", "GU", "MP", "PR", "VI"}:
        return str(region)
    if region != "US":
        return None
    return state_from_description(geocoder.description_for_number(number, "en"))


def _numbers_under_every_us_prefix() -> Iterator[str]:
    from phonenumbers.geodata import GEOCODE_DATA

    for prefix in GEOCODE_DATA:
        if prefix.startswith("1") and len(prefix) > 1:
            for tail in ("0000000000", "5550123456", "9999999999"):
                yield "+" + (prefix + tail)[:11]


def test_the_area_code_table_gives_the_geocoders_state_for_every_us_prefix() -> None:
    # Every prefix the geocoder knows, padded three ways, plus numbers it knows
    # nothing about: the table must never disagree with the library it came from.
    phones = [*_numbers_under_every_us_prefix(), "+18005550123", "+12035550123", "+19995550123"]
    disagree = [
        phone for phone in phones if geography._state_from_phone(phone) != _geocoded_state(phone)
    ]
    assert len(phones) > 10_000
    assert disagree == []


def test_the_shipped_area_code_table_is_the_one_the_installed_phonenumbers_generates() -> None:
    script = Path(__file__).resolve().parent.parent / "scripts" / "area_codes.py"
    spec = importlib.util.spec_from_file_location("area_codes", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shipped = module.TABLE.read_text(encoding="utf-8")
    assert shipped == module.render(), "run `python scripts/area_codes.py` and commit the table"


def test_a_worker_never_loads_the_geocoder() -> None:
    code = (
        "import sys; from campaigns.clock.geography import patient_state;"
        "assert patient_state(None, '+13055550123') == 'FL';"
        "print('phonenumbers.geocoder' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_an_unknown_state_is_an_error() -> None:
    with pytest.raises(InputError, match="not a USPS state code"):
        patient_state("XX", None)
