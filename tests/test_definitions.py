from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from campaigns.content.definitions import load_definition, parse_stored_definition
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


ACK = """\
compliance:
  acknowledged:
    - rule: names-influenza
      template: cold-and-flu-season/sms.txt.j2
      line: 1
      phrase: flu
      sentence: "Cold and flu   season is here."
      reason: "names the season; no health claim"
      by: practice-manager@example.org
"""


def test_an_acknowledgement_names_one_finding(tmp_path: Path) -> None:
    definition = load_definition(write(tmp_path, GOOD + ACK))
    [ack] = definition.compliance.acknowledged
    assert ack.key() == (
        "names-influenza",
        "cold-and-flu-season/sms.txt.j2",
        1,
        "flu",
        "Cold and flu season is here.",  # spaces as the lint writes them
        1,
    )


def test_the_old_phrase_wide_acknowledgement_is_refused_naming_the_field(
    tmp_path: Path,
) -> None:
    old = "compliance:\n  acknowledged:\n    - phrase: flu\n      reason: names the season\n"
    [problem] = problems(write(tmp_path, GOOD + old))
    assert problem.startswith(f"{tmp_path / 'c.yaml'}: compliance.acknowledged[0]: ")
    assert "phrase-wide form" in problem
    assert "rule, template, line, phrase, sentence" in problem


@pytest.mark.parametrize("field", ["rule", "template", "line", "sentence", "reason", "by"])
def test_an_acknowledgement_without_a_field_is_refused(tmp_path: Path, field: str) -> None:
    data = yaml.safe_load(ACK)
    del data["compliance"]["acknowledged"][0][field]
    found = problems(write(tmp_path, GOOD + yaml.safe_dump(data)))
    assert any("compliance.acknowledged[0]" in p for p in found), found


def test_a_stored_definition_loses_its_phrase_wide_acknowledgements() -> None:
    data = yaml.safe_load(GOOD)
    data["compliance"] = {"acknowledged": [{"phrase": "flu", "reason": "names the season"}]}
    assert parse_stored_definition(data, "campaign x").compliance.acknowledged == []
