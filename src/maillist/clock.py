"""Timestamps as stored: ISO 8601, UTC, second precision, so they sort as text."""

from datetime import UTC, datetime


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_precise() -> str:
    """Microsecond timestamps for ordering within a second (thread activity, receive times)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
