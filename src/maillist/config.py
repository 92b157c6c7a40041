"""Runtime configuration, built once at the edge and passed in (no global state)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DB = Path("var/maillist.db")
LEASE_SECONDS = 15 * 60.0  # how long a claimed batch stays its sender's (`serve --lease`)


def is_url(location: object) -> bool:
    """Whether a database location names a PostgreSQL database (else a SQLite file)."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def database(location: str) -> Path | str:
    """A `postgresql://` (or `postgres://`) URL as it is, anything else a SQLite file's path."""
    return location if is_url(location) else Path(location)


def describe(location: Path | str) -> str:
    """The location for messages: a URL without its password, whether in its user part
    (`user:secret@`) or as a query parameter (`?password=secret`, libpq's other spelling)."""
    text = str(location)
    if not is_url(text):
        return text
    text = re.sub(r"^(postgres(?:ql)?://[^:/@?]*):[^@/?]*@", r"\1:***@", text)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", text, flags=re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Config:
    db: Path | str = DEFAULT_DB  # a SQLite file, or a PostgreSQL URL
    actor: str = "cli"

    @classmethod
    def from_env(cls, db: str | None = None, actor: str = "cli") -> Config:
        """--db wins, then MAILLIST_DB, then ./var/maillist.db."""
        if db is None:
            db = os.environ.get("MAILLIST_DB") or str(DEFAULT_DB)
        return cls(db=database(db), actor=actor)
