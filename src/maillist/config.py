"""Runtime configuration, built once at the edge and passed in (no global state)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DB = Path("var/maillist.db")


@dataclass(frozen=True, slots=True)
class Config:
    db: Path = DEFAULT_DB
    actor: str = "cli"

    @classmethod
    def from_env(cls, db: Path | None = None, actor: str = "cli") -> Config:
        """--db wins, then MAILLIST_DB, then ./var/maillist.db."""
        if db is None:
            env = os.environ.get("MAILLIST_DB")
            db = Path(env) if env else DEFAULT_DB
        return cls(db=db, actor=actor)
