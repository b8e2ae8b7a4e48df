"""Staff users: passwords, roles, the login session and API tokens.

Every request the web app serves passes ``_enforce_login`` first. It lets through
only the login page, static files, the public blueprint (Twilio webhooks and
unsubscribe links, which check their own proof) and the API's token endpoint;
anything else needs a staff session, or under /api a bearer token. A route added
later is therefore closed until it is opened here on purpose.

Roles rank viewer < marketer < admin. ``require_role`` states the least role a view
needs; ``init_app`` in console.py refuses to start if a view that accepts a POST
does not state one, so a view that changes something is never open to viewers by
omission.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, wraps
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, URLSafeTimedSerializer

from campaigns import keys
from campaigns.errors import InputError, Problem
from campaigns.services import Services
from campaigns.store.console_queries import record_staff_event
from campaigns.web.app import services_of

log = logging.getLogger(__name__)

ROLES = ("viewer", "marketer", "admin")  # each can do what the ones before it can
IDLE_TIMEOUT_S = 15 * 60
TOKEN_MAX_AGE_S = 60 * 60
MIN_PASSWORD_LENGTH = 12
# A username with this many failed sign-ins in the window is refused until the
# window since its first failure ends, whatever password comes next.
MAX_FAILED_SIGN_INS = 10
SIGN_IN_WINDOW_S = 15 * 60
# Requests that are not a person's activity (htmx polls) carry this header and do
# not keep an idle session alive.
POLL_HEADER = "X-Meridian-Poll"

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@+-]{1,63}$")
_TOKEN_SALT = "meridian.api-token"  # noqa: S105 - a namespace, not a secret
OPEN_ENDPOINTS = frozenset({"auth.login", "static", "api.token"})
_PUBLIC_BLUEPRINTS = frozenset({"public"})
_hasher = PasswordHasher()

P = ParamSpec("P")
R = TypeVar("R")

bp = Blueprint("auth", __name__)


@dataclass(frozen=True)
class Staff:
    username: str
    role: str

    def can(self, role: str) -> bool:
        """True when this user's role is ``role`` or ranks above it."""
        return ROLES.index(self.role) >= ROLES.index(role)


# passwords and users -----------------------------------------------------------


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salt and parameters included)."""
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _decoy_hash() -> str:
    return hash_password("a password no account has")


def add_user(svc: Services, username: str, password: str, role: str, *, actor: str = "cli") -> int:
    """Create a staff user; InputError names what is wrong with the arguments."""
    problems = []
    if not _USERNAME.match(username):
        problems.append(
            Problem("username", "use 2-64 lower-case letters, digits and . _ @ + - characters")
        )
    if role not in ROLES:
        problems.append(Problem("role", f"{role!r} is not one of {', '.join(ROLES)}"))
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(Problem("password", f"is shorter than {MIN_PASSWORD_LENGTH} characters"))
    if problems:
        raise InputError(f"cannot add staff user {username!r}", problems)
    try:
        user_id = svc.staff.add(username, hash_password(password), role)
    except ValueError as exc:
        raise InputError(f"staff user {username!r} already exists; pick another name") from exc
    record_staff_event(svc.db, actor, f"staff.add.{role}", username)
    log.info("staff user %s added with role %s", username, role)
    return user_id


class TooManySignIns(Exception):
    """This username failed too often; no password is checked until ``retry_after_s``."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


def authenticate(svc: Services, username: str, password: str) -> Staff | None:
    """The active staff user with these credentials, or None.

    Raises TooManySignIns once the username has failed MAX_FAILED_SIGN_INS times
    within SIGN_IN_WINDOW_S, so a password cannot be guessed by trying many.
    """
    name = username.strip().lower()
    _refuse_if_locked(svc, name)
    staff = _check_password(svc, name, password)
    if staff is None:
        _count_failure(svc, name)
    return staff


def _check_password(svc: Services, name: str, password: str) -> Staff | None:
    row = svc.staff.get(name)
    if row is None:
        # Spend the same time as a real check, so a reply's timing does not tell
        # which usernames exist. Nothing is audited: a mistyped name may be a password.
        verify_password(_decoy_hash(), password)
        return None
    name = str(row["username"])
    if not verify_password(str(row["password_hash"]), password) or not row["active"]:
        record_staff_event(svc.db, "anonymous", "staff.sign_in_failed", name)
        return None
    return Staff(name, str(row["role"]))


def _refuse_if_locked(svc: Services, name: str) -> None:
    try:
        key = keys.sign_in_failures(name)
        failures = int(svc.redis.get(key) or 0)
        if failures >= MAX_FAILED_SIGN_INS:
            raise TooManySignIns(max(int(svc.redis.ttl(key)), 1))
    except redis.exceptions.RedisError as exc:
        # Staff can still sign in while Redis is away; the limit resumes with it.
        log.warning("sign-in limit not checked (%s)", type(exc).__name__)


def _count_failure(svc: Services, name: str) -> None:
    try:
        key = keys.sign_in_failures(name)
        with svc.redis.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, SIGN_IN_WINDOW_S, nx=True)
            pipe.execute()
    except redis.exceptions.RedisError as exc:
        log.warning("failed sign-in not counted (%s)", type(exc).__name__)


def _active_staff(svc: Services, username: str) -> tuple[Staff, str] | None:
    row = svc.staff.get(username)
    if row is None or not row["active"] or row["role"] not in ROLES:
        return None
    return Staff(str(row["username"]), str(row["role"])), str(row["password_hash"])


# roles ---------------------------------------------------------------------------


def current_staff() -> Staff | None:
    staff: Staff | None = g.get("staff")
    return staff


def require_role(role: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Refuse (403) a signed-in user whose role ranks below ``role``."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            staff = current_staff()
            if staff is None:
                abort(401)
            if not staff.can(role):
                abort(403)
            return view(*args, **kwargs)

        guarded.meridian_role = role  # type: ignore[attr-defined]
        return guarded

    return decorate


def role_of(view: Callable[..., Any]) -> str | None:
    """The least role ``require_role`` set on a view, if any."""
    role: str | None = getattr(view, "meridian_role", None)
    return role


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
    record_staff_event(svc.db, staff.username, "staff.token_issued", staff.username)
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


def _staff_from_session(svc: Services) -> Staff | None:
    username = session.get("user")
    if not isinstance(username, str):
        return None
    now = time.time()
    seen = session.get("seen")
    if not isinstance(seen, int | float) or now - seen > IDLE_TIMEOUT_S:
        session.clear()
        flash("You were signed out after 15 minutes without activity.", "info")
        return None
    found = _active_staff(svc, username)
    if found is None:
        session.clear()
        return None
    if POLL_HEADER not in request.headers:
        session["seen"] = int(now)
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
    svc = services_of(current_app)
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


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never another host (an open redirect)."""
    if not target:
        return url_for("console.dashboard")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("console.dashboard")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if request.method == "GET":
        return render_template("console/login.html", next=request.args.get("next", ""))
    svc = services_of(current_app)
    try:
        staff = authenticate(
            svc, request.form.get("username", ""), request.form.get("password", "")
        )
    except TooManySignIns as exc:
        log.warning("a staff sign-in was refused: too many failures for that username")
        flash(
            f"Too many failed sign-ins for this username. Try again in "
            f"{-(-exc.retry_after_s // 60)} minutes.",
            "error",
        )
        page = render_template("console/login.html", next=request.form.get("next", ""))
        return page, 429, {"Retry-After": str(exc.retry_after_s)}
    if staff is None:
        log.info("a staff sign-in failed")
        flash("Wrong username or password.", "error")
        page = render_template("console/login.html", next=request.form.get("next", ""))
        return page, 401
    session.clear()
    session["user"] = staff.username
    session["seen"] = int(time.time())
    record_staff_event(svc.db, staff.username, "staff.sign_in", staff.username)
    log.info("staff user %s signed in", staff.username)
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
@require_role("viewer")
def logout() -> ResponseReturnValue:
    staff = current_staff()
    session.clear()
    if staff is not None:
        record_staff_event(
            services_of(current_app).db, staff.username, "staff.sign_out", staff.username
        )
        log.info("staff user %s signed out", staff.username)
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


def install(app: Flask) -> None:
    """Register the login pages and the check every request passes first."""
    app.register_blueprint(bp)
    app.before_request(_enforce_login)
