"""The storage layer: the only place that holds SQL. Services pass an opaque `Conn` through."""

from __future__ import annotations

from pathlib import Path

from maillist.config import is_url
from maillist.db.store import BULK_CACHE_KIB, Conn, Store


async def open_store(
    location: Path | str,
    *,
    create: bool = True,
    migrate_to: int | None = None,
    cache_kib: int = BULK_CACHE_KIB,
) -> Store:
    """The store at `location`: a SQLite file, or a `postgresql://` URL."""
    if is_url(location):
        from maillist.db.postgres import PgStore  # psycopg loads only for a site that uses it

        return await PgStore.open(location, create=create, migrate_to=migrate_to)
    return await Store.open(
        Path(location), create=create, migrate_to=migrate_to, cache_kib=cache_kib
    )


__all__ = ["Conn", "Store", "open_store"]
