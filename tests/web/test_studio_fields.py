"""The campaign form's fields to a definition and back (campaigns.web.views.studio_fields):
each refusal lands on the field staff typed into, and a definition fills the form."""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.datastructures import MultiDict

from campaigns.content.definitions import load_definition
from campaigns.web.views.studio_fields import form_values, read_form
from tests.support.factories import EXAMPLE_CAMPAIGN

BASE: dict[str, Any] = {
    "name": "spring",
    "channels": ["sms"],
    "templates": "cold-and-flu-season",
    "schedule_kind": "yearly",
    "month": "3",
    "day": "20",
    "send_time": "10:00",
    "max_attempts": "5",
    "frequency_cap_days": "7",
}


def _form(**changes: Any) -> MultiDict[str, str]:
    fields = {**BASE, **changes}
    return MultiDict(
        [(k, item) for k, v in fields.items() for item in (v if isinstance(v, list) else [v])]
    )


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"schedule_kind": "rrule", "rrule": "FREQ=HOURLY"}, {"rrule"}),
        ({"month": "2", "day": "30"}, {"day"}),
        ({"schedule_kind": "weekly"}, {"weekdays"}),
        ({"schedule_kind": "once", "once": "2027-02-30"}, {"once"}),
        ({"send_time": "25:00", "max_attempts": "0"}, {"send_time", "max_attempts"}),
        ({"channels": [], "name": "Bad Name"}, {"channels", "name"}),
        ({"last_visit_within_days": "soon"}, {"last_visit_within_days"}),
        ({"states": ["Massachusetts"]}, {"states"}),
        ({"timezone": "Mars/Olympus"}, {"timezone"}),
    ],
)
def test_each_refusal_is_placed_on_the_field_that_was_typed_into(
    changes: dict[str, Any], errors: set[str]
) -> None:
    read = read_form(_form(**changes))
    assert read.definition is None
    assert set(read.errors) == errors, read.errors
    assert all("Input should" not in m for m in read.errors.values())


def test_the_form_keeps_what_was_typed_when_refused() -> None:
    read = read_form(_form(max_attempts="lots", tags_any=["herbal", "massage"]))
    assert read.values["max_attempts"] == "lots"
    assert read.values["tags_any"] == ["herbal", "massage"]
    assert read.values["name"] == "spring"


def test_a_definition_fills_the_form_and_the_form_gives_it_back() -> None:
    shipped = load_definition(EXAMPLE_CAMPAIGN)
    values = form_values(shipped)
    assert values["schedule_kind"] == "yearly" and (values["month"], values["day"]) == ("10", "15")
    posted = MultiDict(
        [(k, item) for k, v in values.items() for item in (v if isinstance(v, list) else [v])]
    )
    read = read_form(posted)
    assert read.errors == {}
    assert read.definition == shipped
