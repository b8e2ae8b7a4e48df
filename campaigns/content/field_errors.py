"""Human words for a campaign definition's validation errors, one map for the form,
the YAML import, the API and the CLI.

pydantic says "Input should be a valid integer, unable to parse string as an
integer"; staff read "Max attempts must be a whole number between 1 and 20".
Each message names the field as the form labels it; the bounds come from the
model's own constraints, so the words never drift from the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

# The label of each field as the form shows it; a path missing here is spelled out.
LABELS: dict[str, str] = {
    "name": "Name",
    "description": "Description",
    "channels": "Channels",
    "channel_policy": "Channel policy",
    "templates": "Templates",
    "audience": "Audience",
    "audience.tags_any": "Tags (any of)",
    "audience.tags_none": "Tags to exclude",
    "audience.states": "States",
    "audience.last_visit_within_days": "Last visit within (days)",
    "audience.no_appointment_within_days": "No appointment within (days)",
    "schedule": "Schedule",
    "schedule.rrule": "Repeat rule (RRULE)",
    "schedule.once": "Date",
    "schedule.send_time": "Send time",
    "schedule.timezone": "Time zone",
    "schedule.grace_hours": "Grace hours",
    "limits.max_attempts": "Max attempts",
    "limits.frequency_cap_days": "Frequency cap (days)",
    "limits.retry_base_s": "Retry delay (seconds)",
}

_WHOLE = {"int_type", "int_parsing", "int_from_float", "int_parsing_size"}
_NUMBER = {"float_type", "float_parsing", "finite_number"}
_BOUNDS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def field_path(loc: Sequence[int | str]) -> str:
    """``('limits', 'max_attempts')`` -> ``limits.max_attempts``; list items as ``[1]``."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item not in ("function-after", "function-before") and "[" not in str(item):
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def label(path: str) -> str:
    """The field's label: 'Max attempts' for 'limits.max_attempts'; 'Channels' for 'channels[1]'."""
    bare = path.split("[", 1)[0]
    if bare in LABELS:
        return LABELS[bare]
    return bare.rsplit(".", 1)[-1].replace("_", " ").capitalize()


def _field(model: type[BaseModel], loc: Sequence[int | str]) -> FieldInfo | None:
    """The FieldInfo ``loc`` names in ``model``, or None (a list item, a dict key)."""
    current: Any = model
    found: FieldInfo | None = None
    for item in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        if not isinstance(item, str) or item not in current.model_fields:
            return None
        found = current.model_fields[item]
        current = found.annotation
    return found


def _range(info: FieldInfo | None) -> str:
    """' between 1 and 20', ', at least 1', ', greater than 0', or ''."""
    low = high = ""
    for meta in info.metadata if info else ():
        if isinstance(meta, Ge):
            low = f"{meta.ge:g}"
        elif isinstance(meta, Gt):
            low = f">{meta.gt:g}"
        elif isinstance(meta, Le):
            high = f"{meta.le:g}"
        elif isinstance(meta, Lt):
            high = f"<{meta.lt:g}"
    if low and high and not low.startswith(">") and not high.startswith("<"):
        return f" between {low} and {high}"
    words = []
    if low:
        words.append(f"greater than {low[1:]}" if low.startswith(">") else f"at least {low}")
    if high:
        words.append(f"less than {high[1:]}" if high.startswith("<") else f"at most {high}")
    return (", " + " and ".join(words)) if words else ""


def human_message(model: type[BaseModel], error: ErrorDetails) -> str:
    """One validation error of ``model`` in words staff understand, naming the field."""
    path = field_path(error["loc"])
    name = label(path)
    kind = error["type"]
    info = _field(model, error["loc"])
    whole = info is not None and info.annotation in (int, int | None)
    if kind == "missing":
        return f"{name} is required"
    if kind == "extra_forbidden":
        return f"{name}: a campaign has no field {path!r}; check its spelling"
    if kind in _WHOLE or (kind in _BOUNDS and whole):
        return f"{name} must be a whole number{_range(info)}"
    if kind in _NUMBER or kind in _BOUNDS:
        return f"{name} must be a number{_range(info)}"
    if kind in ("time_parsing", "time_type", "time_delta_parsing"):
        return f"{name} must be a time of day like 10:00"
    if kind.startswith("date"):
        return f"{name} must be a date like 2027-10-15"
    if kind in ("literal_error", "enum"):
        expected = (error.get("ctx") or {}).get("expected", "")
        return f"{name} must be {expected}".rstrip()
    if kind == "too_short":
        return f"{name}: choose at least one"
    if kind in ("string_type", "list_type", "dict_type", "model_type", "bool_type"):
        what = {"list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping"}
        return f"{name} must be {what.get(kind, 'text' if kind == 'string_type' else 'yes or no')}"
    if kind == "string_too_short":
        return f"{name} must not be empty"
    said = error["msg"].removeprefix("Value error, ")
    return f"{name} {said}" if said.startswith("is ") else f"{name}: {said}"
