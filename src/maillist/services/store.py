"""Opening the store, for the edges (CLI, server) that must not reach into db/ themselves."""

from __future__ import annotations

from pathlib import Path

from maillist.db import Database
from maillist.db.writer import SyncTx, Writer

__all__ = ["Store", "SyncTx", "Writer", "open_store"]

Store = Database


async def open_store(path: Path, *, create: bool = False) -> Store:
    """Open (upgrading) the database at `path`; only with `create` is a missing one made."""
    return await Database.open(path, create=create)
