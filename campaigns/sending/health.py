"""Is this deployment ready: database, migrations, Redis, a worker per queue, a beat.

One list of checks, shared by /readyz and ``meridian doctor``. Each says what it
found in a sentence without a URL, a credential or a patient's data: the class
of an exception, never its text (a driver's message may carry the DSN).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from campaigns import keys

if TYPE_CHECKING:
    from campaigns.services import Services


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _guard(name: str, probe: Callable[[], tuple[bool, str]]) -> Check:
    try:
        ok, detail = probe()
    except Exception as exc:  # any failure of a dependency is a failed check, not a 500
        return Check(name, False, f"unreachable ({type(exc).__name__})")
    return Check(name, ok, detail)


def readiness(svc: Services) -> list[Check]:
    """Database, migrations, Redis, a worker seen for each queue, a beat seen."""
    checks = [
        _guard("database", lambda: _ping(svc.health.ping)),
        _guard("migrations", lambda: _migrations(svc)),
        _guard("redis", lambda: _ping(svc.redis.ping)),
    ]
    beats = svc.dispatcher.heartbeats() if svc.has_dispatcher else None
    limit = svc.settings.worker_silence_s
    for queue in keys.QUEUES:
        if beats is None:
            checks.append(Check(f"worker:{queue}", False, "unknown: Redis does not answer"))
            continue
        age = beats.queue_age(queue)
        seen = age is not None and age <= limit
        checks.append(Check(f"worker:{queue}", seen, _seen("a worker", age, limit)))
    if beats is None:
        checks.append(Check("beat", False, "unknown: Redis does not answer"))
    else:
        age = beats.beat_age()
        checks.append(Check("beat", age is not None and age <= limit, _seen("a beat", age, limit)))
    return checks


def _ping(ping: Callable[[], object]) -> tuple[bool, str]:
    ping()
    return True, "answers"


def _migrations(svc: Services) -> tuple[bool, str]:
    current, head = svc.health.migrations()
    if current == head:
        return True, f"at head ({head})"
    return False, f"at {current or 'nothing'}, head is {head}: run `meridian db upgrade`"


def _seen(who: str, age: float | None, limit: float) -> str:
    if age is None:
        return f"{who} has never reported"
    if age > limit:
        return f"{who} last reported {age:.0f} s ago (more than {limit:g} s)"
    return f"{who} reported {age:.0f} s ago"
