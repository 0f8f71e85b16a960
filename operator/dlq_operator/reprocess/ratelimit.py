"""How fast a replay produces: a token bucket measured in messages.

Tokens flow in at ``rate`` per second up to ``burst``; sending ``n`` messages takes ``n``
tokens. :meth:`RateLimiter.acquire` never blocks: it takes the tokens at once, going into
debt when there are too few, and returns how long the caller must wait before sending so
that the debt is paid. The engine does the sleeping (interruptibly, so a cancelled replay
stops at once), and tests drive the bucket with a clock of their own.

Over any stretch of ``T`` seconds at most ``burst + rate * T`` messages go out. The
default burst is a tenth of a second's worth (at least one message), and the engine sends
batches of that size (:func:`batch_size_for`): a replay at 500 msg/s sends 50 messages
every 0.1 s, rather than a thousand at once and then nothing for two seconds, so the
target topic's consumers see an even flow and the rate over 10 s is within 1 % of the
target.
"""

from __future__ import annotations

import time
from collections.abc import Callable

MAX_BATCH = 2000
"""The largest batch the engine sends: the size of an unthrottled replay's batches."""

# The burst and the batch are this many seconds' worth of messages.
_BURST_SECONDS = 0.1


class RateLimiter:
    """A token bucket of ``rate`` messages per second; a rate of 0 never throttles."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate < 0:
            raise ValueError(f"rate must be >= 0, got {rate}")
        if burst is not None and burst <= 0:
            raise ValueError(f"burst must be > 0, got {burst}")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate * _BURST_SECONDS)
        self._clock = clock
        self._tokens = self.burst
        self._updated = clock()

    def acquire(self, n: int = 1) -> float:
        """Take ``n`` tokens; the seconds to wait before sending those ``n`` messages."""
        if not self.rate:
            return 0.0
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        self._tokens -= n
        return max(0.0, -self._tokens / self.rate)


def batch_size_for(rate: float) -> int:
    """How many messages the engine sends at once at ``rate`` messages per second.

    The default burst's worth, so batches leave at an even pace; :data:`MAX_BATCH` when
    unthrottled.
    """
    if not rate:
        return MAX_BATCH
    return max(1, min(MAX_BATCH, int(rate * _BURST_SECONDS)))
