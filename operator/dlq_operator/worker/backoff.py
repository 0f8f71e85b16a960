"""Exponential backoff: how long a dead letter waits before its next retry."""

from __future__ import annotations

import random
from collections.abc import Callable


def compute_backoff(
    retry_count: int,
    *,
    initial: float,
    multiplier: float,
    max_delay: float,
    jitter: float = 0.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retrying a dead letter that has had ``retry_count`` retries.

    The delay is ``min(initial * multiplier ** retry_count, max_delay)``: the original
    design's ``initialDelayMs * multiplier ** (currentRetry - 1)`` with
    ``currentRetry = retryCount + 1``, so a first failure waits ``initial``.

    ``jitter`` is a fraction in ``[0, 1]``: the delay is drawn uniformly from
    ``[d * (1 - jitter), d * (1 + jitter)]`` and then capped at ``max_delay`` again, so
    ``max_delay`` stays a promise (delays already at the cap only spread downwards).
    ``rand`` returns a float in ``[0, 1)``, like :func:`random.random`; tests pass their own.
    """
    if retry_count < 0:
        raise ValueError(f"retry_count must be >= 0, got {retry_count}")
    if initial < 0 or max_delay < 0 or multiplier < 0:
        raise ValueError("initial, multiplier and max_delay must be >= 0")
    if not 0 <= jitter <= 1:
        raise ValueError(f"jitter must be between 0 and 1, got {jitter}")
    try:
        delay = min(initial * float(multiplier) ** retry_count, max_delay)
    except OverflowError:
        # multiplier ** retry_count beyond a float: far past any cap.
        delay = max_delay
    if jitter:
        delay = min(delay * (1 - jitter + 2 * jitter * rand()), max_delay)
    return delay
