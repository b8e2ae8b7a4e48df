"""A global rate limiter per sender: GCRA in one Redis Lua script.

Twilio and the SMTP relay limit the whole account, not one worker, so the limit
must be shared by every process on every machine. Celery's ``rate_limit`` counts
per worker and is not the mechanism (DESIGN section 5).

Why GCRA: a bucket is one number, the theoretical arrival time (TAT) of the next
conforming request, so a check-and-take is a single GET and SET done atomically in
Lua, and a refusal can say exactly how long to wait instead of leaving callers to
poll. It allows ``burst`` requests at once after idling and a steady ``rate``
afterwards, with no window boundary where twice the rate slips through.

Why Redis TIME: workers run on several machines whose clocks drift apart. If each
sent its own time, a worker whose clock ran ahead would see the bucket as refilled
and send early. Every decision is made against the one clock all callers share.
"""

from __future__ import annotations

import time

import redis

from campaigns import keys
from campaigns.errors import ConfigError

# KEYS[1] bucket; ARGV[1] emission interval (us per token); ARGV[2] burst; ARGV[3] tokens.
# Returns 0 when the tokens were taken, else microseconds to wait (nothing taken).
# Times are integer microseconds (about 1.7e15 now, exact in Lua's doubles); string.format
# writes them whole, where tostring would round to 14 significant digits.
_GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local new_tat = tat + tokens * interval
local allow_at = new_tat - burst * interval
if allow_at > now then
  return allow_at - now
end
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.max(ttl_ms, 1))
return 0
"""


class RateLimiter:
    """At most ``rate_per_s`` grants per second for ``sender``, ``burst`` at once after idle.

    Every limiter built for the same sender on the same Redis shares one bucket,
    whatever the process or machine.
    """

    def __init__(self, client: redis.Redis, sender: str, rate_per_s: float, burst: int = 1) -> None:
        # Both come from the settings (MERIDIAN_<CHANNEL>_RATE and _BURST).
        if not rate_per_s > 0:
            raise ConfigError(
                f"rate limit of sender {sender!r}: rate_per_s must be positive, got {rate_per_s!r}"
            )
        if burst < 1:
            raise ConfigError(
                f"rate limit of sender {sender!r}: burst must be at least 1, got {burst!r}"
            )
        self.sender = sender
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._key = keys.rate_limit(sender)
        self._interval_us = max(1, round(1_000_000 / rate_per_s))
        # EVALSHA with a fallback to SCRIPT LOAD, so a restarted Redis (empty script
        # cache) costs one extra round trip, not an error.
        self._script = client.register_script(_GCRA)

    def try_acquire(self, n: int = 1) -> float:
        """Take ``n`` tokens: 0.0 if granted now, else the seconds to wait (nothing taken)."""
        self._check_tokens(n)
        wait_us = self._script(keys=[self._key], args=[self._interval_us, self.burst, n])
        return int(wait_us) / 1_000_000

    def acquire(self, n: int = 1, timeout_s: float | None = None) -> None:
        """Block until ``n`` tokens are granted; TimeoutError if not within ``timeout_s``."""
        self._check_tokens(n)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            wait = self.try_acquire(n)
            if wait == 0.0:
                return
            # The wait is the earliest the bucket could grant; others can only push it
            # later, so a wait that ends past the deadline means it cannot be met.
            if deadline is not None and time.monotonic() + wait > deadline:
                raise TimeoutError(
                    f"rate limit of sender {self.sender!r}: {n} token(s) not available "
                    f"within {timeout_s} s (next in {wait:.3f} s)"
                )
            time.sleep(wait)

    def _check_tokens(self, n: int) -> None:
        # More than the burst at once would never conform: refuse instead of waiting forever.
        if not 1 <= n <= self.burst:
            raise ConfigError(
                f"rate limit of sender {self.sender!r}: n must be between 1 and "
                f"burst={self.burst}, got {n!r}; ask for fewer tokens or raise the burst"
            )
