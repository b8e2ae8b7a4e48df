"""Copy written in the console: versions in the ledger, rendered into the shipped
layouts, linted as it will be sent, and carried in a campaign YAML's ``copy:`` block.
Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from campaigns.content import catalogue, copybook
from campaigns.content.copy import Copy, from_block, templates_key, to_block
from campaigns.content.message import render_message
from campaigns.content.preview import preview_channels
from campaigns.errors import InputError, NotFound
from campaigns.services import Services
from campaigns.store.tables import audit_events
from tests.support.factories import ACTOR, EXAMPLE_CAMPAIGN, add_example_campaign, add_patient

MARKDOWN = """Hi {{ patient.first_name or "there" }},

The **winter hours** start on Monday. Call {{ clinic.phone }} to book.

- mornings from 8
- evenings until 7
"""


def written(**changes: object) -> Copy:
    values: dict[str, object] = {
        "sms": "{{ clinic.name }}: Hi {{ patient.first_name }}, winter hours start Monday. "
        "Reply STOP to opt out",
        "subject": "Winter hours at {{ clinic.name }}",
        "body": MARKDOWN,
        "body_format": "markdown",
        "text": None,
    }
    values.update(changes)
    return Copy(**values)  # type: ignore[arg-type]


def test_every_save_is_a_new_numbered_version_and_audited(svc: Services) -> None:
    name = add_example_campaign(svc)
    first = copybook.save_copy(svc, name, written(), actor="ana")
    second = copybook.save_copy(svc, name, written(subject="Hello"), actor="ben")
    versions = svc.copies.of_campaign(name)
    assert [v["number"] for v in versions] == [2, 1]
    assert (first.version["number"], second.version["number"]) == (1, 2)
    assert versions[0]["author"] == "ben" and versions[0]["email_subject"] == "Hello"
    assert versions[1]["email_subject"] == "Winter hours at {{ clinic.name }}"  # unchanged
    with svc.db.connect() as conn:
        actions = conn.execute(
            select(audit_events.c.action, audit_events.c.actor, audit_events.c.detail).where(
                audit_events.c.action.like("copy.%")
            )
        ).all()
    assert [(a, who, d["version"]) for a, who, d in actions] == [
        ("copy.save", "ana", 1),
        ("copy.save", "ben", 2),
    ]


def test_a_restore_is_a_new_version_copying_the_old_one(svc: Services) -> None:
    name = add_example_campaign(svc)
    copybook.save_copy(svc, name, written(), actor="ana")
    copybook.save_copy(svc, name, written(sms="Changed. Reply STOP to opt out"), actor="ana")
    restored = copybook.restore_version(svc, name, 1, actor="ben")
    assert restored.version["number"] == 3 and restored.version["restored_from"] == 1
    assert Copy.from_row(restored.version) == Copy.from_row(svc.copies.by_number(name, 1) or {})
    with pytest.raises(NotFound, match="no version 9"):
        copybook.restore_version(svc, name, 9, actor="ben")


def test_compare_shows_what_changed_between_two_versions(svc: Services) -> None:
    name = add_example_campaign(svc)
    copybook.save_copy(svc, name, written(), actor="ana")
    copybook.save_copy(svc, name, written(subject="Summer <hours>"), actor="ana")
    parts = {p["part"]: p for p in copybook.compare_versions(svc, name, 1, 2)}
    assert parts["Email subject"]["changed"] and not parts["SMS"]["changed"]
    table = parts["Email subject"]["table"]
    assert "Summer&nbsp;&lt;hours&gt;" in table and "version 1" in table and "diff_add" in table


def test_a_campaign_without_copy_renders_from_its_folder_as_before(svc: Services) -> None:
    name = add_example_campaign(svc)
    _, definition = catalogue.load_campaign(svc, name)
    assert templates_key(svc, definition) == "cold-and-flu-season"
    assert copybook.current_copy(svc, name) is None


def test_markdown_copy_renders_into_the_shipped_layout_with_a_generated_text_part(
    svc: Services,
) -> None:
    name = add_example_campaign(svc)
    copybook.save_copy(svc, name, written(), actor="ana")
    _, definition = catalogue.load_campaign(svc, name)
    patient = svc.patients.recipients([add_patient(svc, "P1", first_name="Zoë")])
    recipient = next(iter(patient.values()))
    email = render_message(svc, definition, recipient, "email")
    assert email.subject == "Winter hours at Harbor Acupuncture & Wellness"
    assert email.html is not None
    assert (
        "<strong>winter hours</strong>" in email.html and "<li>mornings from 8</li>" in email.html
    )
    assert "Hi Zoë," in email.html
    assert "Unsubscribe from Harbor Acupuncture" in email.html  # the layout's footer
    # The text part, generated from the HTML, inside the text layout (its footer too).
    assert email.body.startswith("Hi Zoë,")
    assert "The winter hours start on Monday. Call (617) 555-0142 to book." in email.body
    assert "* mornings from 8" in email.body
    assert "Unsubscribe (one click, no login): " in email.body
    sms = render_message(svc, definition, recipient, "sms")
    assert sms.body.startswith("Harbor Acupuncture & Wellness: Hi Zoë, winter hours")


def test_markdown_cannot_smuggle_html_into_the_email(svc: Services) -> None:
    name = add_example_campaign(svc)
    body = 'Hi\n\n<script>alert(1)</script> <img src=x onerror="y">\n\n[x](javascript:alert(1))'
    copybook.save_copy(svc, name, written(body=body), actor="ana")
    _, definition = catalogue.load_campaign(svc, name)
    recipient = next(iter(svc.patients.recipients([add_patient(svc, "P1")]).values()))
    html = render_message(svc, definition, recipient, "email").html or ""
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;" in html  # shown as the text it is


def test_html_copy_that_extends_a_layout_is_used_as_written(svc: Services) -> None:
    name = add_example_campaign(svc)
    starter = copybook.starter_copy(svc)
    assert starter.body_format == "html" and "{% extends" in (starter.body or "")
    copybook.save_copy(svc, name, starter, actor="ana")
    _, definition = catalogue.load_campaign(svc, name)
    recipient = next(iter(svc.patients.recipients([add_patient(svc, "P1")]).values()))
    from_ledger = preview_channels(svc, definition, recipient)
    folder = {
        ch: render_message(svc, definition, recipient, ch, templates="cold-and-flu-season")
        for ch in ("sms", "email")
    }
    for channel in ("sms", "email"):
        assert from_ledger[channel] == folder[channel].to_dict() | (
            {"segments": from_ledger[channel]["segments"]} if channel == "sms" else {}
        )


def test_the_lint_and_source_see_the_ledger_copy_not_the_folder(svc: Services) -> None:
    name = add_example_campaign(svc)
    claim = written(sms="{{ clinic.name }}: acupuncture cures the flu. Reply STOP to opt out")
    saved = copybook.save_copy(svc, name, claim, actor="ana")
    assert any(
        f["severity"] == "claim" and f["template"] == "@copy/sms.txt.j2" for f in saved.findings
    )
    _, definition = catalogue.load_campaign(svc, name)
    key = templates_key(svc, definition)
    assert key == f"@{saved.version['id']}"
    assert "cures the flu" in svc.renderer.source(key, "sms.txt.j2")
    findings = catalogue.lint_definition(svc, definition)
    assert any(f["template"] == "@copy/sms.txt.j2" for f in findings if f["severity"] == "claim")
    row, _ = catalogue.load_campaign(svc, name)
    with pytest.raises(InputError, match="compliance lint refuses"):
        catalogue.refuse_open_claims(svc, row, definition, "run")


def test_copy_that_cannot_render_is_refused_naming_part_and_line_and_not_saved(
    svc: Services,
) -> None:
    name = add_example_campaign(svc)
    with pytest.raises(InputError) as refused:
        copybook.save_copy(svc, name, written(sms="Hi\n{{ patient.frist_name }}"), actor="ana")
    assert "@copy/sms.txt.j2:2" in str(refused.value) and "frist_name" in str(refused.value)
    assert svc.copies.of_campaign(name) == []


def test_the_check_names_unknown_variables_and_syntax_errors_with_their_line(
    svc: Services,
) -> None:
    name = add_example_campaign(svc)
    answer = copybook.check_text(svc, name, "body", "Hi {{ patient.firstname }}\n\n{{ nope }}")
    assert [(p["line"], p["message"].split(" (")[0]) for p in answer["problems"]] == [
        (1, "unknown variable: patient.firstname"),
        (3, "unknown variable: nope"),
    ]
    broken = copybook.check_text(svc, name, "subject", "Hi\n{% if x %}")
    assert broken["problems"][0]["line"] == 2 and "syntax error" in broken["problems"][0]["message"]
    ucs2 = copybook.check_text(svc, name, "sms", "Café ☕ Reply STOP")
    assert ucs2["segments"]["encoding"] == "UCS-2" and ucs2["segments"]["ucs2_characters"] == ["☕"]


# the YAML copy block --------------------------------------------------------------------


def test_a_yaml_copy_block_saves_a_version_only_when_the_text_changes(
    svc: Services, tmp_path: Path
) -> None:
    data = yaml.safe_load(EXAMPLE_CAMPAIGN.read_text())
    data["copy"] = to_block(written())
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    catalogue.apply_campaign(svc, path, actor=ACTOR)
    catalogue.apply_campaign(svc, path, actor=ACTOR)
    name = data["name"]
    assert [v["number"] for v in svc.copies.of_campaign(name)] == [1]
    row, _ = catalogue.load_campaign(svc, name)
    assert "copy" not in row["definition"]  # the ledger keeps the copy, not the definition
    exported = {**row["definition"], "copy": copybook.current_copy(svc, name)}
    assert exported["copy"] == data["copy"]
    # apply -> export -> apply: still one version, the same block
    path.write_text(yaml.safe_dump(exported, sort_keys=False, allow_unicode=True))
    catalogue.apply_campaign(svc, path, actor=ACTOR)
    assert [v["number"] for v in svc.copies.of_campaign(name)] == [1]
    data["copy"]["sms"] = "{{ clinic.name }}: new text. Reply STOP to opt out"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    catalogue.apply_campaign(svc, path, actor=ACTOR)
    assert [v["number"] for v in svc.copies.of_campaign(name)] == [2, 1]


def test_the_copy_block_round_trips_each_shape() -> None:
    shapes = [
        {"sms": "Hi"},
        {"email": {"subject": "S", "markdown": "**b**"}},
        {"sms": "Hi", "email": {"subject": "S", "html": "<p>b</p>", "text": "b"}},
    ]
    for block in shapes:
        assert to_block(from_block(block, "c.yaml")) == block


def test_a_bad_copy_block_is_refused_naming_the_field(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE_CAMPAIGN.read_text())
    data["copy"] = {"email": {"subject": "S", "markdown": "a", "html": "b", "txt": "c"}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError) as refused:
        catalogue.load_definition(path)
    text = str(refused.value)
    assert "copy" in text and "email.txt: unknown field" in text
    assert "give the body once" in text


def test_migration_0005_goes_down_to_0004_and_up_again(svc: Services) -> None:
    from sqlalchemy import inspect

    from campaigns.store.db import downgrade

    name = add_example_campaign(svc)
    copybook.save_copy(svc, name, written(), actor="ana")
    downgrade(svc.db.engine, "0004")
    schema = inspect(svc.db.engine)
    assert "template_versions" not in schema.get_table_names()
    assert "template_version_id" not in {c["name"] for c in schema.get_columns("campaign_runs")}
    svc.db.upgrade()
    assert svc.db.revisions()[0] == svc.db.revisions()[1]
    copybook.save_copy(svc, name, written(), actor="ana")
    assert [v["number"] for v in svc.copies.of_campaign(name)] == [1]


def test_an_acknowledgement_of_ledger_copy_outlives_edits_elsewhere_in_it(
    svc: Services, tmp_path: Path
) -> None:
    claim_sms = "{{ clinic.name }}: Cold and flu season is here. Reply STOP to opt out"
    data = yaml.safe_load(EXAMPLE_CAMPAIGN.read_text())
    data["compliance"] = {"acknowledged": []}
    data["copy"] = to_block(written(sms=claim_sms))
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    applied = catalogue.apply_campaign(svc, path, actor=ACTOR)
    (finding,) = [f for f in applied.unacknowledged if f["template"] == "@copy/sms.txt.j2"]
    ack = {k: finding[k] for k in ("rule", "template", "line", "phrase", "sentence")}
    data["compliance"]["acknowledged"] = [
        {**ack, "reason": "names the season, claims nothing", "by": "practice manager"}
    ]
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    assert catalogue.apply_campaign(svc, path, actor=ACTOR).unacknowledged == []
    # A new version that changes only the email keeps the SMS finding acknowledged.
    copybook.save_copy(svc, data["name"], written(sms=claim_sms, subject="New"), actor="ana")
    row, definition = catalogue.load_campaign(svc, data["name"])
    catalogue.refuse_open_claims(svc, row, definition, "run")  # nothing open: no error


def test_a_claim_in_a_markdown_body_is_found_on_the_line_it_was_written_on(
    svc: Services,
) -> None:
    name = add_example_campaign(svc)
    body = "Hi {{ patient.first_name }},\n\n- evenings until 7\n\nAcupuncture will cure your flu."
    saved = copybook.save_copy(svc, name, written(body=body), actor="ana")
    claims = [f for f in saved.findings if f["severity"] == "claim"]
    assert claims and {(f["template"], f["line"]) for f in claims} == {("@copy/email.html.j2", 5)}
    assert "Acupuncture will cure your flu." in claims[0]["sentence"]


def test_a_definition_being_edited_previews_and_lints_its_inline_copy(svc: Services) -> None:
    from campaigns.content.definitions import parse_definition

    name = add_example_campaign(svc)
    data = yaml.safe_load(EXAMPLE_CAMPAIGN.read_text())
    data["copy"] = to_block(written(sms="{{ clinic.name }}: draft text. Reply STOP to opt out"))
    definition = parse_definition(data, "editor")
    recipient = next(iter(svc.patients.recipients([add_patient(svc, "P1")]).values()))
    shown = preview_channels(svc, definition, recipient)
    assert "draft text" in shown["sms"]["body"] and "winter hours" in shown["email"]["html"]
    findings = catalogue.lint_definition(svc, definition)
    assert all(f["template"].startswith("@copy/") for f in findings)
    assert svc.copies.of_campaign(name) == []  # previewing saves nothing
