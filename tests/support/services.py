"""Real services for integration tests and benchmarks: redis-server and PostgreSQL.

Each server is private to its owner: a free loopback port, a temporary directory
that ``stop()`` removes, and a parent-death signal so a killed test run does not
leave servers behind. A missing binary skips the test locally and fails it under
``CI=true`` (DESIGN section 8): a green CI must never mean "nothing ran".
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest

from tests.support.waiting import TimedOut, wait_until

_START_TIMEOUT_S = 20.0
_STOP_TIMEOUT_S = 10.0
_PG_SUPERUSER = "postgres"
_PG_DATABASE = "meridian"
_PG_RUN_AS = "nobody"  # PostgreSQL refuses to run as root


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def postgres_bin_dir() -> Path | None:
    """The bin directory of the newest PostgreSQL under /usr/lib/postgresql, if any."""
    found = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    versioned = [p for p in found if p.parent.name.isdigit()]
    if not versioned:
        return None
    return max(versioned, key=lambda p: int(p.parent.name))


def find_binary(name: str) -> str | None:
    """``name`` on PATH, else in PostgreSQL's bin directory (Debian keeps initdb there)."""
    path = shutil.which(name)
    if path is not None:
        return path
    bin_dir = postgres_bin_dir()
    if bin_dir is not None and os.access(bin_dir / name, os.X_OK):
        return str(bin_dir / name)
    return None


def require_binary(name: str) -> str:
    """The path of ``name``; skips the calling test if missing, or fails it under CI."""
    path = find_binary(name)
    if path is not None:
        return path
    message = f"{name}: not installed (not on PATH nor in /usr/lib/postgresql/*/bin)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must provide it", pytrace=False)
    pytest.skip(message)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec (after any uid change, which would
    # clear it): if the test process dies, the server gets SIGTERM instead of
    # lingering on its port.
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _wait_until(ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str) -> None:
    """``wait_until`` the server answers; RuntimeError if it exits or never answers
    (the callers retry a start that lost its port to another process)."""

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} while starting")
        return ready()

    try:
        wait_until(up, _START_TIMEOUT_S, f"{what} to become ready")
    except TimedOut as exc:
        raise RuntimeError(str(exc)) from None


def _end_process(proc: subprocess.Popen[bytes] | None, sig: signal.Signals) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class RedisServer:
    """A private redis-server configured as DESIGN section 5 requires.

    ``appendonly yes`` so data survives a restart, ``noeviction`` so RedBeat
    entries are never silently dropped, no RDB snapshots.
    """

    def __init__(self) -> None:
        self.port = 0
        self.url = ""
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path | None:
        """The server's directory (AOF, log) while it exists; None after ``stop()``."""
        return self._dir

    def start(self) -> RedisServer:
        """Start on a free port with a fresh data directory; returns self."""
        if self._proc is not None:
            raise RuntimeError("this RedisServer is already started")
        binary = require_binary("redis-server")
        self._dir = Path(tempfile.mkdtemp(prefix="meridian-redis-"))
        last_error: RuntimeError | None = None
        for _ in range(3):  # another process may take the free port before we bind it
            self.port = free_port()
            self.url = f"redis://127.0.0.1:{self.port}/0"
            try:
                self._launch(binary)
                return self
            except RuntimeError as exc:
                last_error = exc
                _end_process(self._proc, signal.SIGKILL)
                self._proc = None
        self._remove_dir()
        raise RuntimeError(f"redis-server could not start: {last_error}")

    def stop(self) -> None:
        """Shut the server down (SIGTERM, so it flushes the AOF) and remove its directory."""
        _end_process(self._proc, signal.SIGTERM)
        self._proc = None
        self._remove_dir()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; the directory stays for ``restart()``."""
        _end_process(self._proc, signal.SIGKILL)

    def restart(self, *, lose_data: bool = False) -> None:
        """Stop the server if it runs, then start it again on the same port and directory.

        ``lose_data`` deletes the append-only file first, as a server that comes back
        on a new machine, or one run without persistence, would be: empty.
        """
        if self._dir is None:
            raise RuntimeError("restart() needs a RedisServer that was started")
        _end_process(self._proc, signal.SIGTERM)
        if lose_data:
            for path in self._dir.iterdir():
                if path.name != "redis.log":
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
        self._launch(require_binary("redis-server"))

    def _launch(self, binary: str) -> None:
        assert self._dir is not None
        log = self._dir / "redis.log"
        args = [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self._dir),
            "--appendonly", "yes",
            "--maxmemory-policy", "noeviction",
            "--save", "",
            "--logfile", str(log),
            "--daemonize", "no",
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        try:
            _wait_until(self._answers_ping, self._proc, f"redis-server on port {self.port}")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{_tail(log)}") from None

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def _remove_dir(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class PostgresServer:
    """A private PostgreSQL cluster with a ``meridian`` database and trust auth on loopback.

    Runs as an unprivileged user when started by root; ``fsync=off`` because the
    cluster is thrown away and speed matters more than durability here.
    """

    def __init__(self) -> None:
        self.port = 0
        self.url = ""
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._uid: int | None = None
        self._gid: int | None = None

    @property
    def data_dir(self) -> Path | None:
        """The cluster's directory (data, socket, log) while it exists; None after ``stop()``."""
        return self._dir

    @property
    def dsn(self) -> str:
        """``url`` in the form psycopg and libpq take (without SQLAlchemy's ``+psycopg``)."""
        return self.url.replace("postgresql+psycopg://", "postgresql://", 1)

    def start(self) -> PostgresServer:
        """initdb, start the server and create the ``meridian`` database; returns self."""
        if self._proc is not None:
            raise RuntimeError("this PostgresServer is already started")
        initdb = require_binary("initdb")
        postgres = require_binary("postgres")
        self._choose_user()
        self._dir = Path(tempfile.mkdtemp(prefix="meridian-pg-"))
        try:
            if self._uid is not None:
                os.chown(self._dir, self._uid, self._gid if self._gid is not None else -1)
            self._initdb(initdb)
            self._launch(postgres)
            self.url = self.create_database(_PG_DATABASE)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back, disconnect clients) and remove the cluster."""
        _end_process(self._proc, signal.SIGINT)
        self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its SQLAlchemy URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._conninfo("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return f"postgresql+psycopg://{_PG_SUPERUSER}@127.0.0.1:{self.port}/{name}"

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, ending any session still connected to it."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._conninfo("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))

    def _choose_user(self) -> None:
        if os.geteuid() != 0:
            self._uid = self._gid = None
            return
        try:
            entry = pwd.getpwnam(_PG_RUN_AS)
        except KeyError:
            raise RuntimeError(
                f"running as root, and user {_PG_RUN_AS!r} to run PostgreSQL as does not exist"
            ) from None
        self._uid, self._gid = entry.pw_uid, entry.pw_gid

    def _env(self) -> dict[str, str]:
        assert self._dir is not None
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self._dir),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TZ": "UTC",
        }

    def _initdb(self, initdb: str) -> None:
        assert self._dir is not None
        args = [
            initdb,
            "--pgdata", str(self._dir / "data"),
            "--username", _PG_SUPERUSER,
            "--auth", "trust",
            "--encoding", "UTF8",
            "--locale", "C",
            "--no-sync",
        ]  # fmt: skip
        result = subprocess.run(
            args,
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
            cwd=self._dir,
            env=self._env(),
            user=self._uid,
            group=self._gid,
            extra_groups=None if self._uid is None else [],
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise RuntimeError(f"initdb failed with status {result.returncode}:\n{output}")

    def _launch(self, postgres: str) -> None:
        assert self._dir is not None
        log = self._dir / "postgres.log"
        last_error: RuntimeError | None = None
        for _ in range(3):  # another process may take the free port before we bind it
            self.port = free_port()
            args = [
                postgres,
                "-D", str(self._dir / "data"),
                "-p", str(self.port),
                "-k", str(self._dir),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
                "-c", "max_connections=100",
            ]  # fmt: skip
            with open(log, "ab") as out:
                if self._uid is not None:
                    os.chown(log, self._uid, self._gid if self._gid is not None else -1)
                self._proc = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self._dir,
                    env=self._env(),
                    user=self._uid,
                    group=self._gid,
                    extra_groups=None if self._uid is None else [],
                    preexec_fn=_die_with_parent,
                )
            try:
                _wait_until(self._accepts, self._proc, f"postgres on port {self.port}")
                return
            except RuntimeError as exc:
                last_error = RuntimeError(f"{exc}\n{_tail(log)}")
                _end_process(self._proc, signal.SIGKILL)
                self._proc = None
        raise RuntimeError(f"postgres could not start: {last_error}")

    def _conninfo(self, dbname: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={_PG_SUPERUSER} dbname={dbname}"

    def _accepts(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self._conninfo("postgres"), connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
