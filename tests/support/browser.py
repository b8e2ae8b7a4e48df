"""Headless Chromium for the console's browser tests: Debian's chromium, no browser
download, and screenshots a person looks at in var/screenshots."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Page

from tests.support.factories import STAFF_PASSWORD
from tests.support.settings import ROOT

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying hosts this closed
# network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = ROOT / "var/screenshots"


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(browser: Browser, base_url: str, username: str, timeout_ms: int = 15_000) -> Page:
    """A fresh browser context (its own cookies) signed in as ``username``."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(timeout_ms)
    page.goto(f"{base_url}/login")
    page.fill("#username", username)
    page.fill("#password", STAFF_PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{base_url}/")
    return page
