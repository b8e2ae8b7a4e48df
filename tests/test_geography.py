"""Where a patient is: zone and state, stored or from the area code (campaigns.clock.geography)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

import phonenumbers
import pytest

from campaigns.clock import geography
from campaigns.clock.geography import (
    parse_area_codes,
    patient_state,
    state_from_description,
)
from campaigns.errors import ConfigError, InputError

NEW_YORK = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
HONOLULU = ZoneInfo("Pacific/Honolulu")


# -- where the patient is ------------------------------------------------------------


def test_candidate_zones_agree_only_when_their_clocks_never_differ() -> None:
    assert geography._zones_agree(("America/New_York", "America/Toronto"), 2027)
    assert not geography._zones_agree(("America/Boise", "America/Los_Angeles"), 2027)
    # Same offsets all winter, but Phoenix skips daylight time.
    assert not geography._zones_agree(("America/Denver", "America/Phoenix"), 2027)


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
    from phonenumbers import geocoder  # here: only these tests pay for its 100 MB

    number = phonenumbers.parse(phone, None)
    region = phonenumbers.region_code_for_number(number)
    if region in {"AS", "GU", "MP", "PR", "VI"}:
        return str(region)
    if region != "US":
        return None
    return state_from_description(geocoder.description_for_number(number, "en"))


# -- the area-code table ---------------------------------------------------------------


@pytest.fixture(scope="module")
def area_codes() -> ModuleType:
    """scripts/area_codes.py, the table's generator and checker."""
    script = Path(__file__).resolve().parent.parent / "scripts" / "area_codes.py"
    spec = importlib.util.spec_from_file_location("area_codes", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def installed_states(area_codes: ModuleType) -> dict[str, str]:
    """NPA-NXX -> state for the whole US numbering plan, per the installed geocoder."""
    states: dict[str, str] = area_codes.installed_states()
    return states


@pytest.fixture(scope="module")
def shipped(area_codes: ModuleType) -> str:
    text: str = area_codes.TABLE.read_text(encoding="utf-8")
    return text


@pytest.fixture(scope="module")
def moved(
    area_codes: ModuleType, installed_states: dict[str, str], shipped: str
) -> list[tuple[str, str, str]]:
    """(NPA-NXX, the table's state, the installed geocoder's) wherever they differ."""
    differ: list[tuple[str, str, str]] = area_codes.moved(shipped, installed_states)
    return differ


def test_the_shipped_area_code_table_is_well_formed(area_codes: ModuleType, shipped: str) -> None:
    table = parse_area_codes(shipped)
    assert area_codes.generated_with(shipped) is not None
    assert len(table) > 300
    # Each row changes its parent's state, or the generator would not have written it.
    for prefix, state in table.items():
        parents = (prefix[:end] for end in range(len(prefix) - 1, 0, -1))
        assert state != next((table[p] for p in parents if p in table), ""), prefix


@pytest.mark.parametrize(
    ("rows", "complaint"),
    [
        ("305,FL\n305,GA\n", "line 4: prefix 305 appears twice"),
        ("305,Florida\n", "line 3: state 'Florida' is not a USPS code"),
        ("3O5,FL\n", "line 3: prefix '3O5' is not 1 to 6 digits"),
        ("305\n", "line 3: expected 'prefix,state'"),
    ],
)
def test_a_malformed_area_code_table_is_rejected_naming_the_line(rows: str, complaint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_area_codes("# generated\nprefix,state\n" + rows)
    assert f"campaigns/data/us_area_codes.csv: {complaint}" in str(caught.value)


@pytest.mark.filterwarnings("default:phonenumbers .* moved:UserWarning")
def test_the_area_code_table_gives_the_geocoders_state_for_every_us_prefix(
    area_codes: ModuleType,
    installed_states: dict[str, str],
    shipped: str,
    moved: list[tuple[str, str, str]],
) -> None:
    # Every NPA-NXX with a valid US number. Against the release it was generated from
    # the table must agree everywhere. A newer release (phonenumbers is pinned to a
    # range) may have moved a few area codes: that is reported for a maintainer, who
    # runs `python scripts/area_codes.py --check`, not a failure, since the shipped
    # table is what Meridian runs on.
    assert len(installed_states) > 100_000
    generated_with = area_codes.generated_with(shipped)
    if generated_with == phonenumbers.__version__:
        assert area_codes.describe(moved) == []
        return
    # A release moves a few area codes; a broken table or lookup would move most.
    assert len(moved) < len(installed_states) // 20, area_codes.describe(moved)[:20]
    if moved:
        warnings.warn(
            f"phonenumbers {phonenumbers.__version__} moved {len(moved)} US NPA-NXX since "
            f"the area-code table's {generated_with} "
            f"({'; '.join(area_codes.describe(moved)[:10])}): "
            "run `python scripts/area_codes.py --check`",
            UserWarning,
            stacklevel=1,
        )


def test_the_shipped_area_code_table_is_the_one_its_phonenumbers_release_generates(
    area_codes: ModuleType, installed_states: dict[str, str], shipped: str
) -> None:
    generated_with = area_codes.generated_with(shipped)
    if generated_with != phonenumbers.__version__:
        pytest.skip(
            f"the table comes from phonenumbers {generated_with}, "
            f"{phonenumbers.__version__} is installed"
        )
    assert shipped == area_codes.render(installed_states), (
        "run `python scripts/area_codes.py` and commit the table"
    )


def test_a_phones_state_is_the_geocoders_under_every_table_row_and_area_code(
    installed_states: dict[str, str], shipped: str, moved: list[tuple[str, str, str]]
) -> None:
    # The whole lookup (parse, region, number type, table) on real numbers: under every
    # row of the table and every area code, padded three ways, and under one NPA-NXX in
    # fifty; numbers it knows nothing about too. Prefixes a newer release moved are
    # left to the test above.
    moved_keys = {key for key, _, _ in moved}
    prefixes = [
        *parse_area_codes(shipped),
        *(str(npa) for npa in range(200, 1000)),
        *sorted(installed_states)[::50],
    ]
    phones = [
        f"+1{(prefix + tail)[:10]}"
        for prefix in prefixes
        for tail in ("0000000000", "5550123456", "9999999999")
    ]
    phones += ["+18005550123", "+12035550123", "+19995550123"]
    disagree = [
        phone
        for phone in phones
        if phone[2:8] not in moved_keys
        and geography._state_from_phone(phone) != _geocoded_state(phone)
    ]
    assert len(phones) > 10_000
    assert disagree == []


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


def test_the_e164_fast_path_reads_a_nanp_number_as_phonenumbers_parse_does() -> None:
    """geography reads the ledger's E.164 NANP numbers without phonenumbers.parse; for
    every kind of number (any area, toll-free, 555, 9XX) the result must be parse's."""
    import random

    import phonenumbers

    from campaigns.clock import geography

    rng = random.Random(16)
    numbers = ["+12015550142", "+18005550100", "+19005550100", "+16845550100"]
    numbers += [f"+1{rng.randint(2_000_000_000, 9_999_999_999)}" for _ in range(3000)]
    for number in numbers:
        assert geography._parse_phone(number) == phonenumbers.parse(number, None), number
    # anything else still goes through parse: a bad one is None, not an error
    assert geography._parse_phone("+1 201 555 0142") == phonenumbers.parse("+12015550142")
    assert geography._parse_phone("not a number") is None
