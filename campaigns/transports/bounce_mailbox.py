"""The bounce mailbox over IMAP: read each new report once, decide, mark it done.

``MERIDIAN_BOUNCE_IMAP_URL`` names the mailbox: ``imaps://user:password@host:993/INBOX``
(TLS from the start) or ``imap://…:143/INBOX`` (STARTTLS when the server offers it;
without it, only to a loopback host). Unseen messages are fetched without marking
them (BODY.PEEK), decided (campaigns.people.bounces), then flagged \\Seen, or moved
to MERIDIAN_BOUNCE_IMAP_DONE_FOLDER. A crash between the two reads a message again
next time, and the report, kept once per Message-ID, decides nothing twice.

Logs say how many reports and what was decided; never an address or a body.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import ssl
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from campaigns.errors import ConfigError, TransientError
from campaigns.people import bounces
from campaigns.people.bounce_reports import read_report

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass(frozen=True)
class MailboxAddress:
    tls: bool
    host: str
    port: int
    user: str
    password: str
    folder: str


@dataclass
class PollResult:
    """How many messages were read and what they decided (decision -> count)."""

    read: int = 0
    decisions: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {"read": self.read, "decisions": dict(sorted(self.decisions.items()))}


def parse_url(url: str) -> MailboxAddress:
    """The parts of MERIDIAN_BOUNCE_IMAP_URL; ConfigError naming the setting if wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps"):
        raise ConfigError(
            "MERIDIAN_BOUNCE_IMAP_URL: must start imaps:// or imap:// "
            "(like imaps://user:password@mail.example.org/INBOX)"
        )
    if not parts.hostname or parts.username is None or parts.password is None:
        raise ConfigError("MERIDIAN_BOUNCE_IMAP_URL: needs a host, a user and a password")
    tls = parts.scheme == "imaps"
    return MailboxAddress(
        tls=tls,
        host=parts.hostname,
        port=parts.port or (993 if tls else 143),
        user=unquote(parts.username),
        password=unquote(parts.password),
        folder=unquote(parts.path.lstrip("/")) or "INBOX",
    )


def _connect(where: MailboxAddress, timeout: float = 30.0) -> imaplib.IMAP4:
    context = ssl.create_default_context()
    try:
        if where.tls:
            conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                where.host, where.port, ssl_context=context, timeout=timeout
            )
        else:
            conn = imaplib.IMAP4(where.host, where.port, timeout=timeout)
            if "STARTTLS" in conn.capabilities:
                conn.starttls(ssl_context=context)
            elif where.host not in _LOOPBACK:
                conn.logout()
                raise ConfigError(
                    "MERIDIAN_BOUNCE_IMAP_URL: the server offers no STARTTLS; use imaps:// "
                    "(a password is sent in clear only to 127.0.0.1)"
                )
        conn.login(where.user, where.password)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise TransientError(f"bounce mailbox: {type(exc).__name__}") from None
    return conn


def poll(svc: Services, *, limit: int = 500) -> PollResult:
    """Read the unseen reports in the bounce mailbox, decide each, and mark it done."""
    secret_url = svc.settings.bounce_imap_url
    if secret_url is None:
        raise ConfigError("MERIDIAN_BOUNCE_IMAP_URL: not set; no bounce mailbox to read")
    where = parse_url(secret_url.get_secret_value())
    done_folder = svc.settings.bounce_imap_done_folder
    result = PollResult()
    conn = _connect(where)
    try:
        typ, _ = conn.select(_quoted(where.folder))
        if typ != "OK":
            raise ConfigError(f"MERIDIAN_BOUNCE_IMAP_URL: no folder {where.folder!r}")
        _, found = conn.uid("SEARCH", "UNSEEN")
        uids = [u.decode() for u in found[0].split()[:limit]] if found and found[0] else []
        for uid in uids:
            raw = _fetch(conn, uid)
            if raw is None:
                continue
            decision = bounces.decide_report(svc, read_report(raw), source="imap")
            result.read += 1
            result.decisions[f"{decision.kind}:{decision.decision}"] += 1
            _mark_done(conn, uid, done_folder)
        if done_folder:
            conn.expunge()
    except (OSError, imaplib.IMAP4.error) as exc:
        raise TransientError(f"bounce mailbox: {type(exc).__name__}") from None
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            conn.logout()
    log.info("bounce mailbox: %s reports read (%s)", result.read, dict(result.decisions))
    return result


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fetch(conn: imaplib.IMAP4, uid: str) -> bytes | None:
    typ, data = conn.uid("FETCH", uid, "(BODY.PEEK[])")
    if typ != "OK":
        return None
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return None


def _mark_done(conn: imaplib.IMAP4, uid: str, done_folder: str | None) -> None:
    conn.uid("STORE", uid, "+FLAGS", "(\\Seen)")
    if done_folder:
        conn.create(_quoted(done_folder))  # NO when it exists: fine
        typ, _ = conn.uid("COPY", uid, _quoted(done_folder))
        if typ == "OK":
            conn.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
