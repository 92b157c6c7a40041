"""The server's log as a terminal and a journal can take it: what senders wrote (a Message-ID,
a subject) never reaches it as raw control characters, and one cause repeated a thousand
times a second (a flood of refused connections, "Too many open files") is one line with a
count, not a disk's worth. Pure: logging objects in, logging objects out."""

from __future__ import annotations

import logging
import re
import time

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def escape(text: str) -> str:
    """Control characters (not newline or tab) and bidi overrides as visible escapes."""
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


class SafeFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return escape(super().format(record))


class Repeats(logging.Filter):
    """At most `burst` records of one origin (logger and message template) per `seconds`; the
    first one let through after a quiet spell says how many were dropped."""

    def __init__(self, burst: int = 20, seconds: float = 60.0) -> None:
        super().__init__()
        self.burst = burst
        self.seconds = seconds
        self._seen: dict[tuple[str, str], tuple[float, int, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        key = (record.name, str(record.msg)[:200])
        start, count, dropped = self._seen.get(key, (now, 0, 0))
        if now - start >= self.seconds:
            if dropped:
                record.msg = f"{record.msg} [{dropped} more like this were not logged]"
            start, count, dropped = now, 0, 0
        if count >= self.burst:
            self._seen[key] = (start, count, dropped + 1)
            return False
        self._seen[key] = (start, count + 1, dropped)
        if len(self._seen) > 10_000:
            self._seen.clear()
        return True
