"""The state rule table: windows by weekday, caps, bad tables (campaigns.clock.quiet_hours)."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
import yaml

from campaigns.clock import quiet_hours
from campaigns.clock.quiet_hours import Window, state_cap, window_for
from campaigns.errors import ConfigError


def test_window_for_reads_the_state_table_by_weekday() -> None:
    assert window_for("TX", date(2027, 10, 17)) == Window(time(12), time(21))
    assert window_for("TX", date(2027, 10, 18)) == Window(time(9), time(21))
    assert window_for("RI", date(2027, 10, 13)) == Window(time(9), time(18))
    assert window_for("RI", date(2027, 10, 17)) == Window(time(10), time(17))
    assert window_for("ct", date(2027, 10, 13)) == Window(time(9), time(20))
    assert window_for(None, date(2027, 10, 13)) == Window(time(8), time(21))


def test_no_state_window_is_wider_than_the_federal_one() -> None:
    federal = window_for(None, date(2027, 10, 11))
    for code in quiet_hours._table().states:
        for offset in range(7):
            window = window_for(code, date(2027, 10, 11) + timedelta(days=offset))
            assert federal.opens <= window.opens and window.closes <= federal.closes


def test_a_state_cannot_widen_the_federal_window(monkeypatch: pytest.MonkeyPatch) -> None:
    data = yaml.safe_load(
        """
        version: 1
        federal: {windows: {all: {opens: "08:00", closes: "21:00"}}, source: s}
        states: {TX: {windows: {all: {opens: "06:00", closes: "23:00"}}, source: s}}
        """
    )
    monkeypatch.setattr(quiet_hours, "_table", lambda: quiet_hours._parse_table(data))
    assert window_for("TX", date(2027, 10, 13)) == Window(time(8), time(21))


def test_florida_oklahoma_and_maryland_cap_texts_at_three_a_day() -> None:
    assert [state_cap(code) for code in ("FL", "OK", "MD", "TX", None)] == [3, 3, 3, None, None]


@pytest.mark.parametrize(
    ("windows", "complaint"),
    [
        ('{all: {opens: "09:00", closes: 21:00}}', "quoted"),
        ('{sun: {opens: "12:00", closes: "21:00"}}', "no window for"),
        ('{all: {opens: "21:00", closes: "09:00"}}', "not before"),
        ('{someday: {opens: "09:00", closes: "21:00"}}', "unknown day selector"),
    ],
)
def test_a_bad_window_table_is_rejected_naming_the_place(windows: str, complaint: str) -> None:
    data = yaml.safe_load(f"version: 1\nfederal: {{windows: {windows}, source: s}}\n")
    with pytest.raises(ConfigError, match=complaint) as caught:
        quiet_hours._parse_table(data)
    assert "quiet_hours.yaml: federal.windows" in str(caught.value)


@pytest.mark.parametrize(
    ("table", "complaint"),
    [
        (
            'federal: {windows: {all: {opens: "08:00", closes: "21:00"}}}',
            "federal.source: every rule must cite its source",
        ),
        (
            "federal: {windows: {all: closed}, source: s, colour: red}",
            "federal.colour: unknown field",
        ),
        (
            "federal: {windows: {all: closed}, source: s}\n"
            "states: {XX: {windows: {all: closed}, source: s}}",
            "states.XX: is not a USPS state code",
        ),
        (
            "federal: {windows: {all: closed}, source: s, cap_per_24h: true}",
            "federal.cap_per_24h: ",
        ),
        (
            'federal: {windows: {all: {opens: "08:00"}}, source: s}',
            "federal.windows.all: expected {opens",
        ),
    ],
)
def test_a_bad_rule_is_rejected_naming_its_field_path(table: str, complaint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        quiet_hours._parse_table(yaml.safe_load(f"version: 1\n{table}\n"))
    assert f"campaigns/data/quiet_hours.yaml: {complaint}" in str(caught.value)


def test_a_table_without_its_version_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"quiet_hours.yaml: version: required field is missing"):
        quiet_hours._parse_table({"federal": {"windows": {"all": "closed"}, "source": "s"}})
