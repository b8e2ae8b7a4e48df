"""Staff accounts of the console: roles, argon2id password hashes, adding a user.

The CLI's ``meridian users add`` and the web's sign-in both use this; the sign-in
flow itself (failure limit, session, API tokens) is the web's (campaigns.web.auth).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import phonenumbers
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email

from campaigns.errors import InputError, NotFound, Problem

if TYPE_CHECKING:
    from campaigns.services import Services

log = logging.getLogger(__name__)

# Each can do what the ones before it can; an approver also approves campaigns.
ROLES = ("viewer", "marketer", "approver", "admin")
MIN_PASSWORD_LENGTH = 12

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@+-]{1,63}$")
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Staff:
    username: str
    role: str

    def can(self, role: str) -> bool:
        """True when this user's role is ``role`` or ranks above it."""
        return ROLES.index(self.role) >= ROLES.index(role)


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salt and parameters included)."""
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def decoy_hash() -> str:
    """A hash no account has: checking against it costs what a real check costs."""
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
    # The store refuses a taken username with an InputError naming it.
    user_id = svc.staff.add(username, hash_password(password), role)
    svc.reports.record_staff_event(actor, f"staff.add.{role}", username)
    log.info("staff user %s added with role %s", username, role)
    return user_id


def list_users(svc: Services) -> list[dict[str, object]]:
    """Every staff user: username, role, active, created_at (never a hash)."""
    return svc.staff.all()


def change_user(
    svc: Services,
    username: str,
    *,
    actor: str,
    role: str | None = None,
    active: bool | None = None,
    password: str | None = None,
) -> str:
    """Change a user's role, active flag or password, audited; a sentence saying what
    was done. Disabling a user or changing the password ends all of the user's sessions."""
    values: dict[str, object] = {}
    if role is not None:
        if role not in ROLES:
            raise InputError(f"role {role!r} is not one of {', '.join(ROLES)}")
        values["role"] = role
    if active is not None:
        values["active"] = active
    if password is not None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InputError(f"the password is shorter than {MIN_PASSWORD_LENGTH} characters")
        values["password_hash"] = hash_password(password)
    if not svc.staff.change(username, **values):
        raise NotFound(f"no staff user named {username!r}; `meridian users list` lists them")
    if role is not None:
        what, action = f"now has role {role}", f"staff.role.{role}"
    elif active is not None:
        what = "is enabled" if active else "is disabled and signed out everywhere"
        action = "staff.enable" if active else "staff.disable"
    else:
        what, action = "has a new password and is signed out everywhere", "staff.password"
    svc.reports.record_staff_event(actor, action, username)
    log.info("staff user %s changed by %s: %s", username, actor, action)
    return f"staff user {username} {what}"


def set_contact(svc: Services, username: str, *, phone: str, email: str) -> dict[str, str | None]:
    """Set the user's own phone and email, where their test sends go; blank clears one.
    InputError names each field that is wrong (and never repeats what was typed)."""
    problems, phone_e164, email_normal = [], None, None
    if phone.strip():
        try:
            number = phonenumbers.parse(phone, svc.settings.default_region)
            if not phonenumbers.is_valid_number(number):
                raise phonenumbers.NumberParseException(1, "not valid")
            phone_e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            problems.append(
                Problem(
                    "phone",
                    f"not a valid phone number for region {svc.settings.default_region}; "
                    "write it as on a business card, e.g. (415) 555-0123 or +1 415 555 0123",
                )
            )
    if email.strip():
        try:
            email_normal = validate_email(email.strip(), check_deliverability=False).normalized
        except EmailNotValidError as exc:
            problems.append(Problem("email", f"not a valid email address: {exc}"))
    if problems:
        raise InputError("Your phone and email were not saved", problems)
    if not svc.staff.set_contact(username, phone_e164, email_normal):
        raise NotFound(f"no staff user named {username!r}")
    svc.reports.record_staff_event(username, "staff.contact", username)
    return {"phone": phone_e164, "email": email_normal}
