"""What every test of the web app shares."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from playwright.sync_api import Browser, sync_playwright
from werkzeug.serving import make_server

from campaigns.people import staff
from campaigns.services import Services
from campaigns.web.app import create_app
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Real argon2id, at the smallest cost: the tests sign in hundreds of times.
    monkeypatch.setattr(staff, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def missing(what: str) -> None:
    """A service a browser test needs is not here: skip, but fail under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what}; CI must provide it", pytrace=False)
    pytest.skip(what)


@pytest.fixture
def base_url(svc: Services) -> Iterator[str]:
    """The app on ``svc``, served on a free loopback port for Chromium."""
    server = make_server("127.0.0.1", 0, create_app(svc), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM}: not installed (apt-get install chromium)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()
