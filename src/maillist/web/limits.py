"""Per-client limits of the web side, kept in memory (one process's view is enough to stop one
client's flood; a restart forgets them, which costs an attacker nothing he could not do anyway).

Behind a reverse proxy on loopback the client is the address the proxy names (uvicorn reads
X-Forwarded-For from 127.0.0.1 only, its default `forwarded_allow_ips`)."""

from __future__ import annotations

import time
from collections import OrderedDict, deque


class Window:
    """At most `limit` events per `seconds` for each key; the `keys` most recent keys kept."""

    def __init__(self, limit: int, seconds: float, keys: int = 10_000) -> None:
        self.limit = limit
        self.seconds = seconds
        self._keys = keys
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, key: str, now: float | None = None) -> bool:
        """Count one event for `key`; False when it is over the limit (then it is not counted)."""
        at = time.monotonic() if now is None else now
        times = self._seen.pop(key, None) or deque()
        while times and times[0] <= at - self.seconds:
            times.popleft()
        allowed = len(times) < self.limit
        if allowed:
            times.append(at)
        self._seen[key] = times
        while len(self._seen) > self._keys:
            self._seen.popitem(last=False)
        return allowed
