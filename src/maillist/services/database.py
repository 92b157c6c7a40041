"""Opening the site's database for a command or the server: a SQLite file or a PostgreSQL URL,
upgraded to this maillist's schema (db/store.py, db/postgres.py)."""

from __future__ import annotations

from pathlib import Path

from maillist.db import open_store
from maillist.db.store import BULK_CACHE_KIB, Store


async def open_site(
    location: Path | str, *, create: bool = False, cache_kib: int = BULK_CACHE_KIB
) -> Store:
    """The store at `location`; with `create`, a missing SQLite file (or an empty PostgreSQL
    database) becomes a new site, else it is an error that names the location."""
    return await open_store(location, create=create, cache_kib=cache_kib)
