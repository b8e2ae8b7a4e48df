"""A global rate limiter per sender: GCRA in one Redis Lua script.

Twilio and the SMTP relay limit the whole account, not one worker, so the limit
must be shared by every process on every machine. Celery's ``rate_limit`` counts
per worker and is not the mechanism (DESIGN section 5).

Why GCRA: a bucket is one number, the theoretical arrival time (TAT) of the next
conforming request, so a check-and-take is a single GET and SET done atomically in
Lua, and the answer can say exactly how long to wait instead of leaving callers to
poll. It allows ``burst`` requests at once after idling and a steady ``rate``
afterwards, with no window boundary where twice the rate slips through. ``reserve``
takes the next slot at once and says when it comes, so slots stay one interval apart
however late a caller wakes.

Why Redis TIME: workers run on several machines whose clocks drift apart. If each
sent its own time, a worker whose clock ran ahead would see the bucket as refilled
and send early. Every decision is made against the one clock all callers share.
"""

from __future__ import annotations

import math
import time

import redis

from campaigns import keys
from campaigns.errors import ConfigError

# KEYS[1] bucket; ARGV[1] emission interval (us per token); ARGV[2] burst; ARGV[3] tokens;
# ARGV[4] the longest wait (us) the caller accepts. Returns {1, wait}: the tokens are taken
# and are the caller's from ``wait`` microseconds on (0: at once); or {0, wait}: the wait
# was longer than the caller accepts, and nothing was taken.
# Times are integer microseconds (about 1.7e15 now, exact in Lua's doubles); string.format
# writes them whole, where tostring would round to 14 significant digits.
_GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local new_tat = tat + tokens * interval
local wait = new_tat - burst * interval - now
if wait < 0 then
  wait = 0
end
if wait > max_wait then
  return {0, wait}
end
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.max(ttl_ms, 1))
return {1, wait}
"""

# reserve() without a timeout: any wait is accepted (a century, in microseconds).
_FOREVER_US = 100 * 365 * 86_400 * 1_000_000


class RateLimiter:
    """At most ``rate_per_s`` grants per second for ``sender``, ``burst`` at once after idle.

    Every limiter built for the same sender on the same Redis shares one bucket,
    whatever the process or machine.

    ``jitter_s`` is how late a send may reach the provider after its grant and still
    keep every second the provider counts within the rate: grants are spaced so that
    ``rate_per_s`` of them take one second plus ``jitter_s``. A send is late when its
    process is descheduled or the network holds it; several late ones land together,
    and with grants spaced exactly 1/rate apart a second at the provider would count
    more than the rate. The mean is then rate / (1 + jitter_s), 97.1 % at 30 ms. (That
    holds with a burst of 1; a larger burst lets that many through at once after idling.)
    """

    def __init__(
        self,
        client: redis.Redis,
        sender: str,
        rate_per_s: float,
        burst: int = 1,
        jitter_s: float = 0.0,
    ) -> None:
        # All three come from the settings (MERIDIAN_<CHANNEL>_RATE and _BURST, and
        # MERIDIAN_RATE_JITTER_MS).
        if not rate_per_s > 0:
            raise ConfigError(
                f"rate limit of sender {sender!r}: rate_per_s must be positive, got {rate_per_s!r}"
            )
        if burst < 1:
            raise ConfigError(
                f"rate limit of sender {sender!r}: burst must be at least 1, got {burst!r}"
            )
        if not 0 <= jitter_s < 1:
            raise ConfigError(
                f"rate limit of sender {sender!r}: jitter_s must be at least 0 and under "
                f"1 s, got {jitter_s!r}"
            )
        self.sender = sender
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._key = keys.rate_limit(sender)
        self._interval_us = max(1, round((1_000_000 + jitter_s * 1_000_000) / rate_per_s))
        # EVALSHA with a fallback to SCRIPT LOAD, so a restarted Redis (empty script
        # cache) costs one extra round trip, not an error.
        self._script = client.register_script(_GCRA)

    def try_acquire(self, n: int = 1) -> float:
        """Take ``n`` tokens: 0.0 if granted now, else the seconds to wait (nothing taken)."""
        self._check_tokens(n)
        _, wait_us = self._take(n, max_wait_us=0)
        return wait_us / 1_000_000

    def reserve(self, n: int = 1, timeout_s: float | None = None) -> float:
        """Take the next ``n`` tokens now: the seconds until they are due (0.0: at once).

        TimeoutError, taking nothing, if they are not due within ``timeout_s``. The
        slot is taken in the same call that finds it, so slots stay exactly one
        interval apart on Redis's clock however late each caller comes for its own.
        Asking again after a wait (the way ``try_acquire`` answers) would lose that
        lateness on every grant: the next slot would count from when the late caller
        got through, 4 to 6 % of the rate at 100/s and over 20 % on a busy machine
        (bench/ratelimit.py). A slot taken and not used is lost, never given twice."""
        self._check_tokens(n)
        if timeout_s is None or timeout_s == math.inf:
            max_wait_us = _FOREVER_US
        else:
            max_wait_us = max(0, min(_FOREVER_US, int(timeout_s * 1_000_000)))
        taken, wait_us = self._take(n, max_wait_us)
        if not taken:
            raise TimeoutError(
                f"rate limit of sender {self.sender!r}: {n} token(s) not available "
                f"within {timeout_s} s (next in {wait_us / 1_000_000:.3f} s)"
            )
        return wait_us / 1_000_000

    def acquire(self, n: int = 1, timeout_s: float | None = None) -> None:
        """Block until ``n`` tokens are due: ``reserve``, then sleep until they are."""
        wait = self.reserve(n, timeout_s)
        if wait:
            time.sleep(wait)

    def _take(self, n: int, max_wait_us: int) -> tuple[bool, int]:
        taken, wait_us = self._script(
            keys=[self._key], args=[self._interval_us, self.burst, n, max_wait_us]
        )
        return bool(taken), int(wait_us)

    def _check_tokens(self, n: int) -> None:
        # More than the burst at once would never conform: refuse instead of waiting forever.
        if not 1 <= n <= self.burst:
            raise ConfigError(
                f"rate limit of sender {self.sender!r}: n must be between 1 and "
                f"burst={self.burst}, got {n!r}; ask for fewer tokens or raise the burst"
            )
