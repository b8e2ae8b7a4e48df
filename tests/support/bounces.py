"""Bounce and complaint reports from tests/fixtures/bounces, filled in for a delivery."""

from __future__ import annotations

from campaigns.people import verp
from campaigns.services import Services
from tests.conftest import ROOT

FIXTURES = ROOT / "tests/fixtures/bounces"


def report(
    name: str,
    *,
    verp_to: str = "postmaster@example.org",
    message_id: str = "<unknown@example.org>",
    report_id: str = "report-1@mta.example.net",
    recipient: str = "patient@example.net",
) -> bytes:
    """The fixture ``name`` (dsn-hard, dsn-soft, arf-abuse) as CRLF bytes, filled in."""
    text = (FIXTURES / f"{name}.eml").read_text()
    for key, value in (
        ("@@VERP@@", verp_to),
        ("@@MESSAGE_ID@@", message_id),
        ("@@REPORT_ID@@", report_id),
        ("@@RECIPIENT@@", recipient),
    ):
        text = text.replace(key, value)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def verp_of(svc: Services, delivery_id: int) -> str:
    """The envelope sender Meridian gives ``delivery_id``'s email."""
    local, domain = verp.bounce_base(svc.settings.bounce_address, svc.settings.email_from)
    return verp.return_path(svc.settings.secret_key.get_secret_value(), delivery_id, local, domain)
