"""Flood control: a token bucket per client, and a warning at most once per second.

One student pasting a thousand lines, or a script in a loop, must not bury everyone else's
conversation.  Each client has a bucket of `burst` tokens, refilled continuously at `rate`
tokens per second (never above `burst`); every line it sends takes one token.  A line that
finds the bucket empty is dropped, and the sender is warned, but at most once per
`warn_every` seconds, so that the warnings cannot become a flood of their own.  A rate of 0
turns the limit off.

    limiter = FloodLimiter(rate=10, burst=30)
    verdict = limiter.check()     # "pass", "warn" (drop it and warn) or "drop" (drop it)

The clock is a parameter (default time.monotonic), so that tests can drive time by hand.
No sockets, no threads: it can serve any server implementation.
"""

import time

__all__ = ["TokenBucket", "FloodLimiter", "PASS", "WARN", "DROP"]

PASS, WARN, DROP = "pass", "warn", "drop"


class TokenBucket:
    """burst tokens, refilled at rate per second; take() spends one if there is one."""

    def __init__(self, rate, burst, clock=time.monotonic):
        if rate < 0:
            raise ValueError(f"rate must be 0 or more, not {rate}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    @property
    def tokens(self):
        """The tokens available now."""
        self._refill()
        return self._tokens

    def take(self):
        """Spend one token and return True, or return False if the bucket is empty."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def _refill(self):
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now


class FloodLimiter:
    """A TokenBucket plus the rule for warning; rate 0 means no limit."""

    def __init__(self, rate, burst, clock=time.monotonic, warn_every=1.0):
        self._bucket = TokenBucket(rate, burst, clock) if rate > 0 else None
        self._clock = clock
        self._warn_every = warn_every
        self._warned_at = None

    def check(self):
        """Return PASS (let the line through), WARN (drop it, warn) or DROP (drop it)."""
        if self._bucket is None or self._bucket.take():
            return PASS
        now = self._clock()
        if self._warned_at is None or now - self._warned_at >= self._warn_every:
            self._warned_at = now
            return WARN
        return DROP
