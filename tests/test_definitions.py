from __future__ import annotations

from pathlib import Path

import pytest

from campaigns.content.definitions import load_definition
from campaigns.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
GOOD = """\
name: spring-check-in
channels: [sms]
templates: cold-and-flu-season
schedule:
  rrule: FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=20
  send_time: "10:00"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(InputError) as caught:
        load_definition(path)
    return [str(p) for p in caught.value.problems] or [caught.value.message]


def test_the_shipped_campaign_parses() -> None:
    definition = load_definition(ROOT / "examples/campaigns/cold-and-flu-season.yaml")
    assert definition.name == "cold-and-flu-season"
    assert definition.schedule.rrule is not None
    assert set(definition.channels) == {"sms", "email"}


def test_a_minimal_campaign_gets_the_defaults(tmp_path: Path) -> None:
    definition = load_definition(write(tmp_path, GOOD))
    assert definition.channel_policy == "all_consented"
    assert definition.limits.frequency_cap_days == 7
    assert definition.schedule.grace_hours == 6


def test_a_missing_field_is_named_by_its_path(tmp_path: Path) -> None:
    found = problems(write(tmp_path, GOOD.replace('  send_time: "10:00"\n', "")))
    assert any("schedule.send_time" in p and "required" in p.lower() for p in found), found


def test_an_invalid_rrule_is_named_with_the_reason(tmp_path: Path) -> None:
    found = problems(write(tmp_path, GOOD.replace("FREQ=YEARLY", "FREQ=YEARLYY")))
    assert any("schedule.rrule" in p for p in found), found


def test_a_send_time_with_a_utc_offset_is_refused(tmp_path: Path) -> None:
    found = problems(write(tmp_path, GOOD.replace('"10:00"', '"10:00+02:00"')))
    assert any("schedule.send_time" in p and "wall-clock" in p for p in found), found


def test_an_unknown_channel_is_refused(tmp_path: Path) -> None:
    found = problems(write(tmp_path, GOOD.replace("[sms]", "[sms, fax]")))
    assert any("channels[1]" in p for p in found), found


def test_an_unknown_field_is_refused_rather_than_ignored(tmp_path: Path) -> None:
    found = problems(write(tmp_path, GOOD + "audiance:\n  tags_any: [active]\n"))
    assert any("audiance" in p for p in found), found


def test_both_once_and_rrule_is_refused(tmp_path: Path) -> None:
    found = problems(
        write(tmp_path, GOOD.replace("  send_time", "  once: 2027-01-05\n  send_time"))
    )
    assert any("exactly one" in p for p in found), found


def test_broken_yaml_names_line_and_column(tmp_path: Path) -> None:
    found = problems(write(tmp_path, GOOD + "audience: [unclosed\n"))
    assert any(":" in p and "not valid YAML" in p for p in found), found
