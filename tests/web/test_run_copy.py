"""A run's page names the copy it sends: the ledger version pinned when it started,
or the campaign's templates folder."""

from __future__ import annotations

import pytest
import yaml
from flask.testing import FlaskClient

from campaigns.content.catalogue import save_definition
from campaigns.content.copy import to_block
from campaigns.content.definitions import parse_definition
from campaigns.sending import runs
from campaigns.services import Services
from campaigns.web.app import create_app
from tests.support.factories import ACTOR, EXAMPLE_CAMPAIGN, add_examples, add_staff
from tests.test_copy import written
from tests.web.test_console import NAME, settings_overrides, sign_in  # noqa: F401 - a fixture


@pytest.fixture
def console(svc: Services) -> FlaskClient:
    add_staff(svc, vic="viewer")
    return create_app(svc).test_client()


def test_a_runs_page_names_the_version_of_copy_it_sends(
    console: FlaskClient, svc: Services
) -> None:
    client = console
    add_examples(svc)
    folder_run = runs.start_run(svc, NAME, actor="test")
    sign_in(client, "vic")
    page = client.get(f"/runs/{folder_run}").get_data(as_text=True)
    assert "sends the templates folder's copy" in page
    assert "Started by hand (Run now)" in page

    runs.cancel_run(svc, folder_run, actor="test")
    data = yaml.safe_load(EXAMPLE_CAMPAIGN.read_text())
    data["copy"] = to_block(written())
    definition = parse_definition(data, "test")
    save_definition(svc, definition, actor=ACTOR, source="test", approve=True)
    # another occurrence: two runs started by hand in the same second share one
    ledger_run = runs.start_run(svc, NAME, occurrence="now:second", actor="test")
    page = client.get(f"/runs/{ledger_run}").get_data(as_text=True)
    assert "version 1 of the copy" in page
    assert f"saved by {ACTOR}" in page
