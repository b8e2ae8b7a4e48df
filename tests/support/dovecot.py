"""A private dovecot IMAP server for tests: its own config, maildir and port in a temp dir.

Started as whoever runs the tests (root in the CI container, a user on a laptop):
the mail user is that same uid, authentication is a static password, and TLS is off
(the bounce reader sends a password in clear only to 127.0.0.1). Messages are put
in with IMAP APPEND, as a mail system delivers them.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.support.services import (
    _die_with_parent,
    _end_process,
    _tail,
    _wait_until,
    free_port,
    require_binary,
)

USER = "bounces"
PASSWORD = "bounce-secret"

_CONFIG = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{dir}/mail/%u
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def _service_users(uid: int) -> dict[str, str]:
    """Dovecot's login and internal processes refuse to run as root: as root, use the
    users Debian's package made (dovenull, dovecot); otherwise the tests' own user."""
    me = pwd.getpwuid(uid).pw_name
    if uid != 0:
        return {"login": me, "internal": me}
    return {"login": "dovenull", "internal": "dovecot"}


class DovecotServer:
    """``with DovecotServer() as imap:`` … ``imap.url``, ``imap.append(raw)``."""

    def __init__(self) -> None:
        self.port = 0
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, folder: str = "INBOX") -> str:
        return f"imap://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{folder}"

    def start(self) -> DovecotServer:
        binary = require_binary("dovecot")
        self._dir = Path(tempfile.mkdtemp(prefix="meridian-dovecot-"))
        for sub in ("run", "state", "mail", "home"):
            (self._dir / sub).mkdir()
        uid, gid = os.getuid(), os.getgid()
        if uid == 0:  # mail is never read as root: as Debian's "dovecot" user instead
            owner = pwd.getpwnam("dovecot")
            uid, gid = owner.pw_uid, owner.pw_gid
            for sub in ("mail", "home"):
                os.chown(self._dir / sub, uid, gid)
            os.chmod(self._dir, 0o755)
        last: RuntimeError | None = None
        for _ in range(3):  # another process may take the free port first
            self.port = free_port()
            config = self._dir / "dovecot.conf"
            config.write_text(
                _CONFIG.format(
                    dir=self._dir,
                    **_service_users(os.getuid()),
                    group=grp.getgrgid(gid).gr_name,
                    uid=uid,
                    gid=gid,
                    password=PASSWORD,
                    port=self.port,
                )
            )
            self._proc = subprocess.Popen(
                [binary, "-F", "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
            try:
                _wait_until(self._answers, self._proc, f"dovecot on port {self.port}")
                return self
            except RuntimeError as exc:
                last = RuntimeError(f"{exc}\n{_tail(self._dir / 'dovecot.log')}")
                _end_process(self._proc, signal.SIGKILL)
        raise RuntimeError(f"dovecot could not start: {last}")

    def stop(self) -> None:
        _end_process(self._proc, signal.SIGTERM)
        self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _answers(self) -> bool:
        try:
            with imaplib.IMAP4("127.0.0.1", self.port, timeout=1) as conn:
                conn.login(USER, PASSWORD)
                conn.logout()
            return True
        except (OSError, imaplib.IMAP4.error):
            return False

    def client(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        conn.login(USER, PASSWORD)
        return conn

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        """Deliver one message into ``folder``, unseen."""
        conn = self.client()
        try:
            conn.create(folder)
            typ, _ = conn.append(folder, "", None, raw)  # type: ignore[arg-type]
            assert typ == "OK", "IMAP APPEND refused"
        finally:
            conn.logout()

    def flags(self, folder: str = "INBOX") -> list[str]:
        """The flags of each message in ``folder``, in order."""
        conn = self.client()
        try:
            _, count = conn.select(folder)
            if not count or count[0] in (b"0", None):
                return []
            _, data = conn.fetch("1:*", "(FLAGS)")
            return [d.decode() for d in data if isinstance(d, bytes)]
        finally:
            conn.logout()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
