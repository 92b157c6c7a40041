"""Time in one place: the clock maillist reads and the one format it stores timestamps in.

ISO 8601, UTC, microseconds (`2026-12-01T10:31:33.123456Z`), so timestamps sort as text and order
events within a second. Older rows written with second precision still parse."""

from datetime import UTC, datetime

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now() -> datetime:
    return datetime.now(UTC)


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime(FORMAT)


def stamp() -> str:
    """Now, as stored."""
    return iso(now())


def parse(text: str) -> datetime:
    for fmt in (FORMAT, "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"not a maillist timestamp: {text!r}")
