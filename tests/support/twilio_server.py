"""A local Twilio-compatible HTTP server for tests and the chaos benchmark.

It speaks the slice of the 2010-04-01 REST API Meridian uses, in Twilio's own
shapes, so the real ``twilio`` client runs against it unchanged:

- ``POST /2010-04-01/Accounts/{sid}/Messages.json`` creates a message (form fields
  To, From or MessagingServiceSid, Body, StatusCallback);
- ``GET  /2010-04-01/Accounts/{sid}/Messages.json`` lists them, newest first, with the
  filters the client sends (To, From, ``DateSent``, ``DateSent>``, ``DateSent<``) and
  Twilio's paging (PageSize, Page, PageToken, ``next_page_uri``);
- ``GET  /2010-04-01/Accounts/{sid}/Messages/{MessageSid}.json`` fetches one;
- ``GET  /2010-04-01/Accounts/{sid}.json`` fetches the account (``meridian doctor``).

Every request needs HTTP basic auth with the account SID and auth token (401 and
Twilio error 20003 otherwise). Errors are Twilio-shaped JSON:
``{"code", "message", "more_info", "status"}``.

Faults are queued with ``inject`` (or drawn at random with ``set_fault_rate``) and
consumed by create requests only. "slow" and "lost" accept the message first, the
way a real timeout or a dropped reply leaves the sender not knowing: the message
is in ``accepted()`` and in the log although the client never saw a reply.

Simplification: a message is "sent" the moment it is accepted, so ``date_sent``
equals ``date_created`` (real Twilio leaves ``date_sent`` empty while queued).

Run as a process for the chaos benchmark; it prints its URL and serves until
SIGTERM or SIGINT::

    python -m tests.support.twilio_server --port 0 --account-sid AC... \
        --auth-token T --log accepted.jsonl --fault-rate 0.1 --seed 1
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hmac
import json
import math
import random
import re
import signal
import socket
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from twilio.request_validator import RequestValidator

API_VERSION = "2010-04-01"
FAULTS = ("429", "500", "slow", "lost", "21211", "21610", "21614")

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_LIST = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages\.json$")
_ACCOUNT = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)\.json$")
_ONE = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$")
_DEFAULT_PAGE_SIZE = 50
_MAX_PAGE_SIZE = 1000
_MAX_BODY = 1600
_IDLE_TIMEOUT_S = 10.0  # an idle keep-alive connection is closed after this
_CALLBACK_TIMEOUT_S = 5.0

# (HTTP status, Twilio code, message) for each error the server can answer with.
_ERRORS: dict[str, tuple[int, int, str]] = {
    "429": (429, 20429, "Too Many Requests"),
    "500": (500, 20500, "An internal server error has occurred"),
    "21211": (400, 21211, "The 'To' number {to} is not a valid phone number."),
    "21610": (400, 21610, "Attempt to send to unsubscribed recipient"),
    "21614": (400, 21614, "'To' number {to} is not a valid mobile number"),
    "21602": (400, 21602, "Message body is required."),
    "21603": (400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required"),
    "21604": (400, 21604, "A 'To' phone number is required."),
    "21617": (400, 21617, "The concatenated message body exceeds the 1600 character limit."),
    "20001": (400, 20001, "Invalid paging parameter"),
    "20003": (401, 20003, "Authenticate"),
    "20404": (404, 20404, "The requested resource {path} was not found"),
}


class _Reply:
    """What a handler should do: answer with JSON, or hang up without answering."""

    def __init__(self, status: int = 200, payload: object = None, *, drop: bool = False) -> None:
        self.status = status
        self.payload = payload
        self.drop = drop
        self.delay_s = 0.0


def _error(key: str, **fields: str) -> _Reply:
    status, code, message = _ERRORS[key]
    payload = {
        "code": code,
        "message": message.format(**fields),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return _Reply(status, payload)


def _parse_when(value: str) -> tuple[datetime, bool] | None:
    """A DateSent filter value: (instant, is_whole_day), or None if unreadable."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day, time(), tzinfo=UTC), True
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC), False


def _segments(body: str) -> int:
    # A rough count (GSM-7 sizes only); the real rules live in campaigns.content.sms.
    return 1 if len(body) <= 160 else math.ceil(len(body) / 153)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    app: TwilioServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is part of the game, not a server bug.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TwilioServer/1"
    timeout = _IDLE_TIMEOUT_S
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle and delayed
        # ACKs add 40 ms to every keep-alive reply.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.app._track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.app._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines carry phone numbers in the query string: log nothing.
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8") if length else ""
        form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        reply = self.server.app._dispatch(
            method, self.path, self.headers.get("Authorization"), form
        )
        if reply.delay_s:
            self.server.app._stopping.wait(reply.delay_s)
        if reply.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = json.dumps(reply.payload).encode("utf-8")
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            if reply.status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="Twilio API"')
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True


class TwilioServer:
    """A Twilio-compatible Messages API on a loopback port, run in a thread."""

    def __init__(
        self,
        account_sid: str = "AC" + "0" * 32,
        auth_token: str = "test-token",
        *,
        log_path: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.log_path = log_path
        self.host = host
        self.port = port
        self.url = ""
        self.slow_s = 5.0  # how long a "slow" reply takes: longer than a test client's timeout
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.create_requests = 0  # every POST to Messages.json that passed auth

        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        self._faults: deque[str] = deque()
        self.faults_served: dict[str, int] = {}  # fault -> how many requests got it
        self._faults_to: dict[str, deque[str]] = {}
        self._fault_rate = 0.0
        self._fault_choices: tuple[str, ...] = ()
        self._rng = random.Random(0)
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._log: IO[str] | None = None

    # -- life cycle ---------------------------------------------------------

    def start(self) -> TwilioServer:
        if self._httpd is not None:
            raise RuntimeError("TwilioServer already started")
        if self.log_path is not None:
            self._log = self.log_path.open("a", encoding="utf-8")
        self._stopping.clear()
        httpd = _HttpServer((self.host, self.port), _Handler)
        httpd.app = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, hang up on open connections and wake any slow replies."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> TwilioServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests look at and steer ---------------------------------------

    def accepted(self) -> list[dict[str, Any]]:
        """Every message accepted, oldest first."""
        with self._lock:
            return [self._summary(m) for m in self._messages]

    def inject(self, fault: str, times: int = 1, *, to: str | None = None) -> None:
        """Queue ``fault`` for the next ``times`` create requests (to ``to`` only, if given)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        with self._lock:
            queue = self._faults if to is None else self._faults_to.setdefault(to, deque())
            queue.extend([fault] * times)

    def set_fault_rate(
        self, rate: float, faults: Sequence[str] = ("429", "500", "lost"), seed: int = 0
    ) -> None:
        """Answer a fraction ``rate`` of create requests with a random fault."""
        unknown = [f for f in faults if f not in FAULTS]
        if unknown or not 0.0 <= rate <= 1.0:
            raise ValueError(f"bad fault rate {rate!r} or faults {unknown!r}")
        with self._lock:
            self._fault_rate = rate
            self._fault_choices = tuple(faults)
            self._rng = random.Random(seed)

    def deliver_callbacks(self, status: str = "delivered") -> int:
        """POST a signed status callback for each accepted message not yet in ``status``.

        Signed the way Twilio signs: HMAC-SHA1 of the callback URL followed by the
        sorted form fields, keyed with the auth token, in X-Twilio-Signature.
        Returns how many callbacks got an HTTP answer (of any status).
        """
        with self._lock:
            due = [m for m in self._messages if m["status_callback"] and m["status"] != status]
            for message in due:
                message["status"] = status
                message["date_updated"] = self.clock()
            posts = [(m["status_callback"], self._callback_form(m)) for m in due]
        validator = RequestValidator(self.auth_token)
        posted = 0
        with requests.Session() as session:
            for url, form in posts:
                signature = validator.compute_signature(url, form)
                try:
                    session.post(
                        url,
                        data=form,
                        headers={"X-Twilio-Signature": signature},
                        timeout=_CALLBACK_TIMEOUT_S,
                        allow_redirects=False,
                    )
                except requests.RequestException:
                    continue
                posted += 1
        return posted

    # -- request handling (called from handler threads) ----------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _dispatch(
        self, method: str, target: str, authorization: str | None, form: dict[str, str]
    ) -> _Reply:
        if not self._authorized(authorization):
            return _error("20003")
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        account = _ACCOUNT.match(parts.path)
        if account and method == "GET" and account.group("account") == self.account_sid:
            # The account fetch `meridian doctor` makes to check the credentials.
            return _Reply(
                200,
                {"sid": self.account_sid, "status": "active", "type": "Full", "uri": parts.path},
            )
        listing = _LIST.match(parts.path)
        one = _ONE.match(parts.path)
        route = listing or one
        if route is None or route.group("account") != self.account_sid:
            return _error("20404", path=parts.path)
        if listing and method == "POST":
            return self._create(form)
        if listing and method == "GET":
            return self._list(parts.path, query)
        if one and method == "GET":
            return self._fetch(one.group("sid"), parts.path)
        return _error("20404", path=parts.path)

    def _authorized(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(authorization[6:], validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        expected = f"{self.account_sid}:{self.auth_token}"
        return hmac.compare_digest(f"{user}:{password}".encode(), expected.encode())

    def _next_fault(self, to: str) -> str | None:
        targeted = self._faults_to.get(to)
        if targeted:
            return targeted.popleft()
        if self._faults:
            return self._faults.popleft()
        if self._fault_rate and self._rng.random() < self._fault_rate:
            return self._rng.choice(self._fault_choices)
        return None

    def _create(self, form: dict[str, str]) -> _Reply:
        to = form.get("To", "")
        sender = form.get("From") or None
        service = form.get("MessagingServiceSid") or None
        body = form.get("Body", "")
        with self._lock:
            self.create_requests += 1
            fault = self._next_fault(to)
            if fault is not None:
                self.faults_served[fault] = self.faults_served.get(fault, 0) + 1
            if fault is not None and fault in _ERRORS:
                return _error(fault, to=to)
            if not to:
                return _error("21604")
            if not _E164.match(to):
                return _error("21211", to=to)
            if not sender and not service:
                return _error("21603")
            if not body:
                return _error("21602")
            if len(body) > _MAX_BODY:
                return _error("21617")
            message = self._accept(to, sender, service, body, form.get("StatusCallback") or None)
            payload = self._resource(message)
        reply = _Reply(201, payload)
        if fault == "lost":
            reply.drop = True
        elif fault == "slow":
            reply.delay_s = self.slow_s  # the reply comes, after the client gave up
        return reply

    def _accept(
        self, to: str, sender: str | None, service: str | None, body: str, callback: str | None
    ) -> dict[str, Any]:
        now = self.clock()
        message: dict[str, Any] = {
            "sid": "SM" + uuid.uuid4().hex,
            "to": to,
            "from": sender,
            "messaging_service_sid": service,
            "body": body,
            "status_callback": callback,
            # With a Messaging Service Twilio answers "accepted"; with a From, "queued".
            "status": "accepted" if service and not sender else "queued",
            "date_created": now,
            "date_sent": now,
            "date_updated": now,
        }
        self._messages.append(message)
        if self._log is not None:
            self._log.write(json.dumps(self._summary(message)) + "\n")
            self._log.flush()
        return message

    def _fetch(self, sid: str, path: str) -> _Reply:
        with self._lock:
            for message in self._messages:
                if message["sid"] == sid:
                    return _Reply(200, self._resource(message))
        return _error("20404", path=path)

    def _list(self, path: str, query: dict[str, str]) -> _Reply:
        try:
            page_size = min(int(query.get("PageSize", _DEFAULT_PAGE_SIZE)), _MAX_PAGE_SIZE)
            page = int(query.get("Page", 0))
        except ValueError:
            return _error("20001")
        page_size = max(page_size, 1)
        with self._lock:
            # Newest first, as Twilio lists; among equal times the later accepted first.
            newest_first = sorted(
                enumerate(self._messages), key=lambda im: (im[1]["date_created"], im[0])
            )
            found = [m for _, m in reversed(newest_first) if self._matches(m, query)]
            start = page * page_size
            token = query.get("PageToken", "")
            if token.startswith("PA"):
                sids = [m["sid"] for m in found]
                after = token[2:]
                start = sids.index(after) + 1 if after in sids else len(found)
            chunk = found[start : start + page_size]
            records = [self._resource(m) for m in chunk]
        keep = {k: v for k, v in query.items() if k not in ("Page", "PageToken")}

        def page_uri(number: int, extra: dict[str, str] | None = None) -> str:
            params = {**keep, "PageSize": str(page_size), "Page": str(number), **(extra or {})}
            return f"{path}?{urlencode(params)}"

        more = start + page_size < len(found)
        payload = {
            "first_page_uri": page_uri(0),
            "end": start + len(records) - 1 if records else start,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "messages": records,
            "uri": page_uri(page, {"PageToken": token} if token else None),
            "page_size": page_size,
            "start": start,
            "next_page_uri": (
                page_uri(page + 1, {"PageToken": "PA" + chunk[-1]["sid"]}) if more else None
            ),
            "page": page,
        }
        return _Reply(200, payload)

    @staticmethod
    def _matches(message: dict[str, Any], query: dict[str, str]) -> bool:
        if "To" in query and message["to"] != query["To"]:
            return False
        if "From" in query and message["from"] != query["From"]:
            return False
        sent: datetime = message["date_sent"].replace(microsecond=0)
        for key, value in query.items():
            if not key.startswith("DateSent"):
                continue
            when = _parse_when(value)
            if when is None:
                return False
            instant, whole_day = when
            op = key[len("DateSent") :]
            # "DateSent>" is what the client sends for date_sent_after, and the raw
            # query "DateSent>=…" parses to it: on or after. Same for "<": on or before.
            if op in (">", ">="):
                if sent < instant:
                    return False
            elif op in ("<", "<="):
                end = instant + timedelta(days=1) if whole_day else instant
                if (sent >= end) if whole_day else (sent > end):
                    return False
            elif op == "":
                if whole_day and sent.date() != instant.date():
                    return False
                if not whole_day and sent != instant:
                    return False
        return True

    def _resource(self, message: dict[str, Any]) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message['sid']}.json"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": message["body"],
            "date_created": format_datetime(message["date_created"]),
            "date_sent": format_datetime(message["date_sent"]),
            "date_updated": format_datetime(message["date_updated"]),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": message["from"],
            "messaging_service_sid": message["messaging_service_sid"],
            "num_media": "0",
            "num_segments": str(_segments(message["body"])),
            "price": None,
            "price_unit": "USD",
            "sid": message["sid"],
            "status": message["status"],
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": message["to"],
            "uri": uri,
        }

    @staticmethod
    def _summary(message: dict[str, Any]) -> dict[str, Any]:
        return {
            "sid": message["sid"],
            "to": message["to"],
            "from": message["from"],
            "messaging_service_sid": message["messaging_service_sid"],
            "body": message["body"],
            "status_callback": message["status_callback"],
            "date_created": message["date_created"].isoformat(),
        }

    def _callback_form(self, message: dict[str, Any]) -> dict[str, str]:
        form = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "MessageSid": message["sid"],
            "MessageStatus": message["status"],
            "SmsSid": message["sid"],
            "SmsStatus": message["status"],
            "To": message["to"],
            "From": message["from"] or "",
        }
        if message["messaging_service_sid"]:
            form["MessagingServiceSid"] = message["messaging_service_sid"]
        if message["status"] in ("undelivered", "failed"):
            form["ErrorCode"] = "30003"
        return form


def _parse_args(argv: Iterable[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.twilio_server",
        description="Serve a Twilio-compatible Messages API until SIGTERM; print its URL.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--account-sid", default="AC" + "0" * 32)
    parser.add_argument("--auth-token", default="test-token")
    parser.add_argument("--log", type=Path, help="append one JSON line per accepted message")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--faults", default="429,500,lost", help="comma-separated fault names")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slow-s", type=float, default=5.0)
    return parser.parse_args(None if argv is None else list(argv))


def main(argv: Iterable[str] | None = None) -> int:
    args = _parse_args(argv)
    # Block the stop signals before any thread starts, so only sigwait sees them.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    server = TwilioServer(
        args.account_sid, args.auth_token, log_path=args.log, host=args.host, port=args.port
    )
    server.slow_s = args.slow_s
    server.start()
    if args.fault_rate:
        server.set_fault_rate(args.fault_rate, tuple(args.faults.split(",")), seed=args.seed)
    print(server.url, flush=True)
    signal.sigwait(stop_signals)
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
