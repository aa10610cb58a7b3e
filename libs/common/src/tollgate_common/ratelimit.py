"""A per-organisation token bucket: ``rate`` calls a minute, bursts up to ``burst``.

The buckets live in the memory of each process, so with N replicas behind the
gateway an organisation gets up to N times its limit; a shared store (Redis) would
make the limit exact across replicas.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable


class RateLimiter:
    """Decides whether a caller may make one more call now."""

    def __init__(
        self,
        per_minute: int,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst or per_minute)
        self._clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    def acquire(self, key: Hashable) -> int | None:
        """Take a token: None if allowed, else the whole seconds until the next one."""
        now = self._clock()
        tokens, seen = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - seen) * self._rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self._rate))
