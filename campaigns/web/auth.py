"""Signing staff in: passwords checked under a failure limit, the session, API tokens.

Every request the web app serves passes ``_enforce_login`` first. It lets through
only the login page, static files, the public blueprint (Twilio webhooks and
unsubscribe links, which check their own proof) and the API's token endpoint;
anything else needs a staff session, or under /api a bearer token. A route added
later is therefore closed until it is opened here on purpose. What a signed-in
user may do by role is campaigns.web.security's; accounts and password hashes
are campaigns.people.staff's.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import timedelta

import redis
from flask import (
    Flask,
    Response,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, URLSafeTimedSerializer

from campaigns import keys
from campaigns.errors import InputError, MeridianError
from campaigns.people.staff import ROLES, Staff, decoy_hash, verify_password
from campaigns.services import Services
from campaigns.web.context import services

log = logging.getLogger(__name__)

IDLE_TIMEOUT_S = 15 * 60
TOKEN_MAX_AGE_S = 60 * 60
# A username with this many failed sign-ins in the window is refused until the
# window since its first failure ends, whatever password comes next.
MAX_FAILED_SIGN_INS = 10
# One address trying many usernames: more, for a clinic behind one NAT address.
MAX_FAILED_FROM_ADDRESS = 50
SIGN_IN_WINDOW_S = 15 * 60
# A session ends after this long whatever the activity.
SESSION_LIFETIME_S = 12 * 60 * 60
# seen_at is written at most this often, not on every request.
_TOUCH_EVERY_S = 30
# Requests that are not a person's activity (htmx polls) carry this header and do
# not keep an idle session alive.
POLL_HEADER = "X-Meridian-Poll"
OPEN_ENDPOINTS = frozenset({"auth.login", "static", "api.token"})

_TOKEN_SALT = "meridian.api-token"  # noqa: S105 - a namespace, not a secret
_PUBLIC_BLUEPRINTS = frozenset({"public", "webhooks", "health"})  # each checks its own proof


class TooManySignIns(MeridianError):
    """This username failed too often; no password is checked until ``retry_after_s``."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


# passwords, under the failure limit -------------------------------------------------


def authenticate(
    svc: Services, username: str, password: str, address: str = "unknown"
) -> Staff | None:
    """The active staff user with these credentials, or None.

    Each attempt first takes a place under two limits in one Redis script (so no
    number of parallel attempts gets past them): MAX_FAILED_SIGN_INS for the
    username and MAX_FAILED_FROM_ADDRESS for the client address, within
    SIGN_IN_WINDOW_S. A right password gives its place back. Past either limit,
    TooManySignIns, and no password is checked.
    """
    name = username.strip().lower()
    counted = _take_a_place(svc, name, address)
    staff = _check_password(svc, name, password)
    if staff is not None and counted:
        _give_back(svc, name, address)
    return staff


# Both counters are checked, then both counted, in one step: a refusal returns the
# longest wait (a negative number), an admission the username's new count.
_TAKE_A_PLACE = """
local user = tonumber(redis.call('GET', KEYS[1]) or '0')
local from = tonumber(redis.call('GET', KEYS[2]) or '0')
if user >= tonumber(ARGV[1]) or from >= tonumber(ARGV[2]) then
  local wait = math.max(redis.call('TTL', KEYS[1]), redis.call('TTL', KEYS[2]), 1)
  return -wait
end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
if redis.call('INCR', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
return n
"""


def _take_a_place(svc: Services, name: str, address: str) -> bool:
    """Count this attempt under both limits, or raise TooManySignIns; False if Redis is
    away (staff can still sign in; the limit resumes with it)."""
    try:
        found = svc.redis.eval(
            _TAKE_A_PLACE,
            2,
            keys.sign_in_failures(name),
            keys.sign_in_failures_from(address),
            MAX_FAILED_SIGN_INS,
            MAX_FAILED_FROM_ADDRESS,
            SIGN_IN_WINDOW_S,
        )
    except redis.exceptions.RedisError as exc:
        log.warning("sign-in limit not checked (%s)", type(exc).__name__)
        return False
    if int(found) < 0:
        raise TooManySignIns(-int(found))
    return True


def _give_back(svc: Services, name: str, address: str) -> None:
    try:
        with svc.redis.pipeline() as pipe:
            pipe.decr(keys.sign_in_failures(name))
            pipe.decr(keys.sign_in_failures_from(address))
            pipe.execute()
    except redis.exceptions.RedisError as exc:
        log.warning("a right password's attempt not given back (%s)", type(exc).__name__)


def _check_password(svc: Services, name: str, password: str) -> Staff | None:
    row = svc.staff.get(name)
    if row is None:
        # Spend the same time as a real check, so a reply's timing does not tell
        # which usernames exist. Nothing is audited: a mistyped name may be a password.
        verify_password(decoy_hash(), password)
        return None
    name = str(row["username"])
    if not verify_password(str(row["password_hash"]), password) or not row["active"]:
        svc.reports.record_staff_event("anonymous", "staff.sign_in_failed", name)
        return None
    return Staff(name, str(row["role"]))


def _active_staff(svc: Services, username: str) -> tuple[Staff, str] | None:
    row = svc.staff.get(username)
    if row is None or not row["active"] or row["role"] not in ROLES:
        return None
    return Staff(str(row["username"]), str(row["role"])), str(row["password_hash"])


# API tokens ------------------------------------------------------------------------


def _serializer(app: Flask) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(app.config["SECRET_KEY"]), salt=_TOKEN_SALT)


def _fingerprint(password_hash: str) -> str:
    # A token names the password it was issued under, so changing the password
    # revokes every token issued before.
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def issue_token(app: Flask, svc: Services, staff: Staff) -> str:
    found = _active_staff(svc, staff.username)
    if found is None:
        raise InputError(f"staff user {staff.username!r} is not active")
    token: str = _serializer(app).dumps({"u": staff.username, "p": _fingerprint(found[1])})
    svc.reports.record_staff_event(staff.username, "staff.token_issued", staff.username)
    return token


def staff_from_token(app: Flask, svc: Services, token: str) -> Staff | None:
    try:
        claim = _serializer(app).loads(token, max_age=TOKEN_MAX_AGE_S)
    except BadSignature:  # also SignatureExpired
        return None
    if not isinstance(claim, dict) or not isinstance(claim.get("u"), str):
        return None
    found = _active_staff(svc, claim["u"])
    if found is None or not hmac.compare_digest(str(claim.get("p")), _fingerprint(found[1])):
        return None
    return found[0]


# the session -------------------------------------------------------------------------


def current_staff() -> Staff | None:
    """Who this request is from: set by the login check before any view runs."""
    staff: Staff | None = g.get("staff")
    return staff


def _session_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(svc: Services, staff: Staff) -> None:
    """A new server-side session; the cookie holds only its random token."""
    token = secrets.token_urlsafe(32)
    # Sessions nobody came back to are removed here: a sign-in is rare and the
    # staff table small, so this costs one DELETE and needs no sweeper of its own.
    svc.staff.end_stale_sessions(
        timedelta(seconds=IDLE_TIMEOUT_S), timedelta(seconds=SESSION_LIFETIME_S)
    )
    svc.staff.open_session(_session_id(token), staff.username)
    session.clear()
    session["sid"] = token
    svc.reports.record_staff_event(staff.username, "staff.sign_in", staff.username)
    log.info("staff user %s signed in", staff.username)


def close_session(svc: Services) -> None:
    """End this session on the server: its cookie opens nothing any more."""
    staff = current_staff()
    token = session.get("sid")
    if isinstance(token, str):
        svc.staff.end_sessions(session_id=_session_id(token))
    session.clear()
    if staff is not None:
        svc.reports.record_staff_event(staff.username, "staff.sign_out", staff.username)
        log.info("staff user %s signed out", staff.username)


def _staff_from_session(svc: Services) -> Staff | None:
    token = session.get("sid")
    if not isinstance(token, str):
        session.pop("user", None)  # a cookie from before server-side sessions
        return None
    sid = _session_id(token)
    row = svc.staff.session(sid)
    if row is None:  # signed out, disabled, or ended
        session.clear()
        return None
    # Meridian's clock, the one StaffRepository stamps the session with: both shift
    # together under MERIDIAN_CLOCK_SHIFT_S (rehearsals, the demo).
    now = svc.now()
    age = (now - row["created_at"]).total_seconds()
    idle = (now - row["seen_at"]).total_seconds()
    ended = None
    if age > SESSION_LIFETIME_S:
        ended = "You were signed out: a session lasts at most 12 hours."
    elif idle > IDLE_TIMEOUT_S:
        ended = "You were signed out after 15 minutes without activity."
    if ended is not None:
        svc.staff.end_sessions(session_id=sid)
        session.clear()
        flash(ended, "info")
        return None
    found = _active_staff(svc, str(row["username"]))
    if found is None:
        svc.staff.end_sessions(session_id=sid)
        session.clear()
        return None
    if POLL_HEADER not in request.headers and idle > _TOUCH_EVERY_S:
        svc.staff.touch_session(sid)
    return found[0]


def _refuse_api() -> Response:
    response = jsonify(error="sign in: send 'Authorization: Bearer <token>' from POST /api/token")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="meridian"'
    return response


def _to_login() -> ResponseReturnValue:
    target = url_for("auth.login", next=request.full_path.rstrip("?"))
    if request.headers.get("HX-Request"):
        # A fragment request: ask htmx to move the whole page, not swap the login in.
        response = Response(status=401)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)


def _enforce_login() -> ResponseReturnValue | None:
    if request.endpoint in OPEN_ENDPOINTS or request.blueprint in _PUBLIC_BLUEPRINTS:
        return None
    svc = services()
    if request.path == "/api" or request.path.startswith("/api/"):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        staff = staff_from_token(current_app, svc, token.strip()) if scheme == "Bearer" else None
        if staff is None:
            return _refuse_api()
    else:
        staff = _staff_from_session(svc)
        if staff is None:
            return _to_login()
    g.staff = staff
    return None


def install(app: Flask) -> None:
    """The check every request passes first: install before anything else."""
    app.before_request(_enforce_login)
