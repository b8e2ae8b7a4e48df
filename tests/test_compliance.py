"""The compliance lint: health claims, clinical fields, and required content."""

from __future__ import annotations

import json

import pytest

from campaigns.content.compliance import (
    Channel,
    Finding,
    lint_rendered,
    lint_source,
    load_rules,
    parse_rules,
)
from campaigns.errors import ConfigError

# Lines pasted from the clinic's own article (seed/cold-and-flu-article.txt), the
# kind of text staff are expected to paste into a template.
PASTED_ARTICLE = """\
{# Taken from our blog post on cold and flu season #}
Hi {{ patient.first_name }},
Acupuncture boosts the number of immune cells in your body, including red blood cells, white blood cells, and T-cells.
Interferon is a protein produced in our cells in reaction to the introduction of a virus that prevents the virus from replicating.
It also has anti-inflammatory properties and improves anti-cancer properties.
See you soon at {{ clinic.name }}.
"""  # noqa: E501

CLINIC = "Maple Street Acupuncture"
ADDRESS = "12 Maple Street, Suite 4, Springfield, IL 62701"
UNSUBSCRIBE = "https://meridian.example/unsubscribe/abc123?c=7&p=9"


def claims(source: str, channel: Channel = "sms") -> list[tuple[int | None, str, str | None]]:
    findings = lint_source(channel, "templates/t/sms.txt.j2", source)
    return [(f.line, f.rule, f.phrase) for f in findings if f.severity == "claim"]


def phrases(source: str, channel: Channel = "sms") -> list[str | None]:
    return [phrase for _, _, phrase in claims(source, channel)]


def rendered_sms(text: str, clinic_name: str = CLINIC) -> list[str]:
    findings = lint_rendered(
        "sms",
        "sms.txt.j2",
        text,
        clinic_name=clinic_name,
        clinic_address=ADDRESS,
        unsubscribe_url=None,
    )
    return [f.rule for f in findings]


def rendered_email(text: str, unsubscribe_url: str | None = UNSUBSCRIBE) -> list[str]:
    findings = lint_rendered(
        "email",
        "email.html.j2",
        text,
        clinic_name=CLINIC,
        clinic_address=ADDRESS,
        unsubscribe_url=unsubscribe_url,
    )
    return [f.rule for f in findings]


# -- health and disease claims ----------------------------------------------------------


@pytest.mark.parametrize("channel", ["sms", "email"])
def test_pasted_article_claims_are_found_on_their_lines(channel: Channel) -> None:
    assert claims(PASTED_ARTICLE, channel) == [
        (3, "immune-boosting", "boosts the number of immune cells"),
        (4, "names-virus", "virus"),
        (4, "disease-prevention", "prevents the virus"),
        (5, "names-cancer", "anti-cancer"),
    ]


def test_a_disease_inside_a_wider_claim_is_reported_once() -> None:
    assert claims("Acupuncture prevents the virus.") == [
        (1, "disease-prevention", "prevents the virus")
    ]


@pytest.mark.parametrize(
    "phrase",
    [
        "boost their immune system to fight any virus",
        "boosting the immune system for the prevention of illness",
        "treatment for coronavirus",
        "preventive care \u2013 coronavirus",
        "immunity boosting",
    ],
)
def test_every_phrase_the_ftc_flagged_is_a_claim(phrase: str) -> None:
    assert phrases(phrase)


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("Acupuncture treats back pain.", "treats"),
        ("Patients are cured.", "cured"),
        ("It speeds healing.", "healing"),
        ("Prevention matters.", "Prevention"),
        ("Preventive visits.", "Preventive"),
        ("It helps protect against colds.", "protect against colds"),
        ("Strengthen your immune system now.", "Strengthen your immune system"),
        ("Our immune-boosting plan.", "immune-boosting"),
        ("Helps you fight an infection.", "fight an infection"),
        ("Before influenza arrives.", "influenza"),
        ("Open during COVID-19.", "COVID-19"),
        ("Post-viral fatigue.", "viral"),
        ("Anti-cancer herbs.", "Anti-cancer"),
    ],
)
def test_claim_variants_are_caught(text: str, phrase: str) -> None:
    assert phrase in phrases(text)


@pytest.mark.parametrize(
    "text",
    [
        "Join our spring retreat.",
        "The treaty of Ghent.",
        "Most colds are preventable, they say.",  # "preventable" is not a claim to prevent
        "Book securely online; manicures next door.",
        "Your health matters to us.",
        "Drink plenty of fluid; influence your day.",
        "Cancel any time.",
        "Our cold-weather hours.",
    ],
)
def test_words_that_only_contain_a_claim_word_are_not_claims(text: str) -> None:
    assert phrases(text) == []


def test_claims_in_jinja_comments_are_skipped() -> None:
    assert claims("{# boosts your immune system #}\nHello") == []


def test_a_claim_in_a_multi_line_comment_does_not_shift_later_line_numbers() -> None:
    source = "{# draft:\nprevents flu\n#}\nIt treats colds."
    assert claims(source) == [(4, "disease-treatment", "treats colds")]


def test_jinja_code_is_not_read_as_words_but_its_string_literals_are() -> None:
    source = '{% if season.flu %}{{ "Cures colds!" }}{% endif %}'
    assert claims(source) == [(1, "disease-cure", "Cures colds")]


def test_a_claim_split_over_lines_is_reported_on_its_first_line() -> None:
    assert claims("Hello.\nWe boost your\nimmune system.") == [
        (2, "immune-boosting", "boost your immune system")
    ]


def test_html_markup_in_email_templates_is_not_read_as_words() -> None:
    source = '<div class="treatment-card" title="x">Book now</div>\n<p>It treats colds.</p>'
    assert claims(source, "email") == [(2, "disease-treatment", "treats colds")]


# -- clinical fields --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "phrase"),
    [
        ("Hi {{ patient.first_name }}, about your {{ patient.diagnosis }}.", "patient.diagnosis"),
        ("{% if patient.medications %}Refill time.{% endif %}", "patient.medications"),
        ("Reason: {{ visit_reason | lower }}", "visit_reason"),
        ("Reason: {{ reason_for_visit }}", "reason_for_visit"),
        ("{{ patient['condition'] }}", "condition"),
        ("{{- treatment -}}", "treatment"),
    ],
)
def test_clinical_field_in_an_sms_template_is_an_error(source: str, phrase: str) -> None:
    findings = lint_source("sms", "templates/t/sms.txt.j2", source)
    assert [(f.rule, f.severity, f.line, f.phrase) for f in findings if f.severity == "error"] == [
        ("clinical-field", "error", 1, phrase)
    ]


def test_clinical_field_is_reported_on_its_line() -> None:
    source = "Hi {{ patient.first_name }},\n\nYour {{\n  patient.diagnosis }} visit"
    (finding,) = lint_source("sms", "sms.txt.j2", source)
    assert (finding.rule, finding.line) == ("clinical-field", 4)


def test_clinical_field_in_an_email_template_is_an_error_too() -> None:
    findings = lint_source("email", "email.txt.j2", "{{ patient.diagnosis }}")
    assert [f.rule for f in findings] == ["clinical-field"]


def test_ordinary_fields_and_commented_out_clinical_fields_pass() -> None:
    source = "{# {{ patient.diagnosis }} #}Hi {{ patient.first_name }} from {{ clinic.name }}"
    assert lint_source("sms", "sms.txt.j2", source) == []


# -- required content in rendered messages ----------------------------------------------

GOOD_SMS = f"{CLINIC}: cold season is here. Book at maple.example/book. Reply STOP to opt out."
GOOD_TEXT = f"Book your seasonal visit.\n--\n{CLINIC}\n{ADDRESS}\nUnsubscribe: {UNSUBSCRIBE}\n"
GOOD_HTML = (
    "<p>Book your seasonal visit.</p><footer>Maple Street Acupuncture<br>"
    "12 Maple Street<br>\n  Suite 4<br>Springfield, IL 62701<br>"
    '<a href="https://meridian.example/unsubscribe/abc123?c=7&amp;p=9">Unsubscribe</a></footer>'
)


def test_a_compliant_sms_passes() -> None:
    assert rendered_sms(GOOD_SMS) == []


def test_stop_to_opt_out_wording_and_any_case_also_pass() -> None:
    assert rendered_sms(f"{CLINIC.upper()}: see you soon. Text stop to opt out") == []


def test_sms_without_opt_out_words_is_flagged() -> None:
    assert rendered_sms(f"{CLINIC}: cold season is here. Book now.") == ["sms-opt-out"]


def test_sms_that_only_says_stop_in_passing_is_flagged() -> None:
    assert rendered_sms(f"{CLINIC}: don't stop your self-care. Book now.") == ["sms-opt-out"]


def test_sms_without_the_clinic_name_is_flagged() -> None:
    assert rendered_sms("Cold season is here. Reply STOP to opt out.") == ["sms-clinic-name"]


def test_sms_checked_against_an_empty_clinic_name_is_flagged() -> None:
    findings = lint_rendered(
        "sms", "sms.txt.j2", GOOD_SMS, clinic_name=" ", clinic_address="", unsubscribe_url=None
    )
    assert [f.rule for f in findings] == ["sms-clinic-name"]
    assert "No clinic name was given" in findings[0].message


def test_a_compliant_email_passes_in_both_parts() -> None:
    assert rendered_email(GOOD_TEXT) == []
    assert rendered_email(GOOD_HTML) == []


def test_email_without_the_postal_address_is_flagged() -> None:
    assert rendered_email(GOOD_TEXT.replace(ADDRESS, "Springfield")) == ["email-postal-address"]
    assert rendered_email(GOOD_HTML.replace("Suite 4", "Suite 5")) == ["email-postal-address"]


def test_email_without_the_unsubscribe_url_is_flagged() -> None:
    text = GOOD_TEXT.replace(UNSUBSCRIBE, "https://meridian.example/unsubscribe")
    assert rendered_email(text) == ["email-unsubscribe-link"]
    html_part = GOOD_HTML.replace("abc123", "other")
    assert rendered_email(html_part) == ["email-unsubscribe-link"]


def test_email_rendered_without_an_unsubscribe_url_is_flagged() -> None:
    assert rendered_email(GOOD_TEXT, unsubscribe_url=None) == ["email-unsubscribe-link"]


def test_sms_rules_do_not_apply_to_email_nor_email_rules_to_sms() -> None:
    assert "sms-opt-out" not in rendered_email(GOOD_TEXT)
    assert "email-postal-address" not in rendered_sms(GOOD_SMS)


# -- findings and the rule book ---------------------------------------------------------


def test_a_finding_reads_as_file_line_phrase_rule_and_advice() -> None:
    (finding,) = lint_source("sms", "templates/x/sms.txt.j2", "Hi\n\nIt boosts immune cells.")
    assert str(finding).startswith(
        "templates/x/sms.txt.j2:3: claim 'boosts immune cells' (immune-boosting): "
    )
    assert json.loads(json.dumps(finding.to_dict()))["line"] == 3


def test_a_finding_without_a_line_names_only_the_template() -> None:
    finding = Finding("sms-opt-out", "error", "sms.txt.j2", None, None, "Add STOP.", "FCC 24-24")
    assert str(finding) == "sms.txt.j2: error (sms-opt-out): Add STOP."


def test_every_rule_cites_a_source_and_says_what_to_do() -> None:
    rules = load_rules().rules
    assert len(rules) >= 10
    for rule in rules:
        assert rule.source.strip(), rule.id
        assert "COMPLIANCE.md" in rule.source, rule.id
        assert rule.message.strip(), rule.id
        assert rule.channels, rule.id


def test_rule_ids_are_unique_and_the_book_is_loaded_once() -> None:
    ids = [rule.id for rule in load_rules().rules]
    assert len(ids) == len(set(ids))
    assert load_rules() is load_rules()


def test_a_rule_with_a_broken_pattern_is_rejected_by_id() -> None:
    text = """
rules:
  - {id: bad-one, kind: claim, channels: [sms], patterns: ['(unclosed'], message: m, source: s}
"""
    with pytest.raises(ConfigError, match=r"bad-one.*pattern 1"):
        parse_rules(text, origin="rules.yaml")


def test_a_rule_with_a_misspelt_field_is_rejected() -> None:
    text = """
rules:
  - {id: typo, kind: claim, channels: [sms], patterns: [x], message: m, souce: s}
"""
    with pytest.raises(ConfigError, match=r"typo.*souce"):
        parse_rules(text, origin="rules.yaml")


def test_a_rule_without_a_source_is_rejected() -> None:
    text = "rules:\n  - {id: nosrc, kind: claim, channels: [sms], patterns: [x], message: m}\n"
    with pytest.raises(ConfigError, match=r"nosrc.*'source'"):
        parse_rules(text, origin="rules.yaml")


def test_a_rule_with_an_unknown_channel_is_rejected_naming_rule_and_field() -> None:
    text = """
rules:
  - {id: fax, kind: claim, channels: [fax], patterns: [x], message: m, source: s}
"""
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, origin="rules.yaml")
    assert str(caught.value).startswith("rules.yaml: rule 1 ('fax'): field 'channels.0': ")


def test_a_rule_book_that_is_not_a_mapping_of_rules_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"^rules\.yaml: expected a mapping with a 'rules' list$"):
        parse_rules("- id: x\n", origin="rules.yaml")
    with pytest.raises(ConfigError, match=r"rules\.yaml: field 'rule': unknown field"):
        parse_rules("rule: []\n", origin="rules.yaml")
