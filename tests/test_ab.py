"""A/B copy outside the send loop: the approval fingerprint covers the split and every
variant's text, the split is checked as staff type it, the campaign YAML's ``ab:``
block round-trips, and the plain-language note on known inputs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from statsmodels.stats.proportion import proportions_ztest

from campaigns.content import ab_copy, approval, catalogue, copybook, exchange, review, variants
from campaigns.content.copy import Copy
from campaigns.content.definitions import load_definition
from campaigns.errors import InputError
from campaigns.people.staff import Staff
from campaigns.sending.ab_results import compare
from campaigns.sending.stubs import MemoryDispatcher
from campaigns.services import Services
from tests.support.settings import ROOT, SQLITE_IN_MEMORY, make_settings

CAMPAIGN = ROOT / "examples/campaigns/cold-and-flu-season.yaml"
NAME = "cold-and-flu-season"


@pytest.fixture
def svc(tmp_path: Path, backend: str, database_url: str) -> Iterator[Services]:
    url = SQLITE_IN_MEMORY if backend == "sqlite" else database_url
    services = Services(make_settings(tmp_path, database_url=url), MemoryDispatcher())
    services.db.upgrade()
    yield services
    services.close()


def words(word: str) -> Copy:
    return Copy(
        sms=f"{{{{ clinic.name }}}}: {word} hours start Monday. Reply STOP to opt out",
        subject=f"{word} hours at {{{{ clinic.name }}}}",
        body=f"Hi {{{{ patient.first_name or 'there' }}}},\n\nOur **{word} hours** start Monday.",
    )


def approved_test(svc: Services) -> None:
    catalogue.apply_campaign(svc, CAMPAIGN, actor="mara")
    copybook.save_copy(svc, NAME, words("Winter"), actor="mara")
    ab_copy.add_variant(svc, NAME, actor="mara")
    ab_copy.save_variant(svc, NAME, "B", words("Summer"), actor="mara")
    review.submit(svc, NAME, staff=Staff("mara", "marketer"))
    review.approve(svc, NAME, staff=Staff("april", "approver"))


def state(svc: Services) -> str:
    row, definition = catalogue.load_campaign(svc, NAME)
    return approval.review_status(svc, int(row["id"]), definition).state


def test_the_fingerprint_covers_the_split_and_each_variants_text(svc: Services) -> None:
    approved_test(svc)
    assert state(svc) == "approved"
    ab_copy.set_split(svc, NAME, {"A": "80", "B": "20%"}, actor="mara")
    assert state(svc) == "changed"  # a new split: approve it again

    review.submit(svc, NAME, staff=Staff("mara", "marketer"))
    review.approve(svc, NAME, staff=Staff("april", "approver"))
    assert state(svc) == "approved"
    ab_copy.save_variant(svc, NAME, "B", words("Autumn"), actor="mara")
    assert state(svc) == "changed"  # B's text changed


def test_a_campaign_without_a_test_keeps_the_fingerprint_it_had(svc: Services) -> None:
    catalogue.apply_campaign(svc, CAMPAIGN, actor="mara", approve=True)
    assert state(svc) == "approved"
    _, definition = catalogue.load_campaign(svc, NAME)
    assert variants.fingerprint_part(svc, definition) is None


def test_a_bad_split_names_the_field_and_saves_nothing(svc: Services) -> None:
    approved_test(svc)
    with pytest.raises(InputError) as refused:
        ab_copy.set_split(svc, NAME, {"A": "60", "B": "abc"}, actor="mara")
    assert [str(p) for p in refused.value.problems] == ["split.B: 'abc' is not a whole percentage"]
    with pytest.raises(InputError) as refused:
        ab_copy.set_split(svc, NAME, {"A": 60, "B": 30}, actor="mara")
    assert "add up to 90" in str(refused.value.problems[0])
    with pytest.raises(InputError, match=r"split\.C: campaign .* has no variant C"):
        ab_copy.set_split(svc, NAME, {"A": 50, "C": 50}, actor="mara")
    assert svc.variants.split(int(catalogue.load_campaign(svc, NAME)[0]["id"])) == {
        "A": 50,
        "B": 50,
    }


def test_the_yaml_ab_block_is_applied_and_exported(svc: Services, tmp_path: Path) -> None:
    approved_test(svc)
    text = exchange.export_yaml(svc, NAME)
    document = yaml.safe_load(text)
    assert document["ab"]["split"] == {"A": 50, "B": 50}
    assert "Summer hours" in document["ab"]["variants"]["B"]["sms"]

    document["ab"]["split"] = {"A": 30, "B": 70}
    document["ab"]["variants"]["B"]["sms"] = document["ab"]["variants"]["B"]["sms"].replace(
        "Summer", "Spring"
    )
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(document))
    catalogue.apply_campaign(svc, path, actor="mara")
    cid = int(catalogue.load_campaign(svc, NAME)[0]["id"])
    assert svc.variants.split(cid) == {"A": 30, "B": 70}
    assert "Spring hours" in svc.copies.current_variants(cid)["B"]["sms"]
    assert state(svc) == "changed"

    document["ab"] = {"split": {"A": 50, "C": 50}}
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(InputError, match=r"ab\.variants\.C: the split names it"):
        load_definition(path)


def test_the_note_on_known_inputs() -> None:
    # 400 of 500 against 431 of 500: pooled rate 0.831, z = 0.062 / 0.0237 = 2.616, two-sided
    # p = 0.0089 (worked by hand; statsmodels agrees).
    note = compare("delivered", "A", 400, 500, "B", 431, 500)
    _, p = proportions_ztest([431, 400], [500, 500])
    assert note.p_value == pytest.approx(float(p)) and note.p_value == pytest.approx(
        0.0089, abs=1e-4
    )
    assert note.more_than_chance
    assert note.sentence == (
        "B's texts were delivered 6.2 points more often than A's; a difference this size "
        "happens by chance 9 times in 1,000 (p = 0.009): more than chance."
    )
    same = compare("clicked", "A", 50, 500, "B", 55, 500)
    assert not same.more_than_chance
    assert same.sentence.startswith("B was clicked by 1.0 points more patients than A;")
    assert same.sentence.endswith("it could well be chance.")
    small = compare("booked", "A", 3, 20, "B", 9, 20)
    assert small.p_value is None and not small.more_than_chance
    assert small.sentence.startswith(
        "The samples are too small to tell whether A and B differ in bookings"
    )


def test_migration_0011_goes_down_to_0007_and_up_again(svc: Services) -> None:
    from sqlalchemy import inspect

    from campaigns.store.db import downgrade

    approved_test(svc)
    downgrade(svc.db.engine, "0007")
    schema = inspect(svc.db.engine)
    assert "variant" not in {c["name"] for c in schema.get_columns("deliveries")}
    assert "variant_split" not in {c["name"] for c in schema.get_columns("campaigns")}
    svc.db.upgrade()
    assert svc.db.revisions()[0] == svc.db.revisions()[1]


def test_a_health_claim_in_variant_b_blocks_approval_like_one_in_the_copy(
    svc: Services,
) -> None:
    catalogue.apply_campaign(svc, CAMPAIGN, actor="mara")
    copybook.save_copy(svc, NAME, words("Winter"), actor="mara")
    ab_copy.add_variant(svc, NAME, actor="mara")
    claim = Copy(
        sms="{{ clinic.name }}: walk-in flu shots. Reply STOP to opt out",
        subject="Flu shots at {{ clinic.name }}",
        body="Hi {{ patient.first_name or 'there' }},\n\nWalk-in flu shots.",
    )
    ab_copy.save_variant(svc, NAME, "B", claim, actor="mara")
    review.submit(svc, NAME, staff=Staff("mara", "marketer"))
    with pytest.raises(InputError) as refused:
        review.approve(svc, NAME, staff=Staff("april", "approver"))
    assert any(p.where.startswith("B: @copy/sms.txt.j2") for p in refused.value.problems)
