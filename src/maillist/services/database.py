"""Opening the site's database for a command or the server: a SQLite file or a PostgreSQL URL,
upgraded to this maillist's schema (db/store.py, db/postgres.py)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from maillist.config import is_url
from maillist.db import open_store
from maillist.db.store import BULK_CACHE_KIB, Store
from maillist.errors import StoreError


async def open_site(
    location: Path | str, *, create: bool = False, cache_kib: int = BULK_CACHE_KIB
) -> Store:
    """The store at `location`; with `create`, a missing SQLite file (or an empty PostgreSQL
    database) becomes a new site, else it is an error that names the location."""
    return await open_store(location, create=create, cache_kib=cache_kib)


def _lock_path(location: Path | str) -> Path:
    return Path(f"{location}-serve.lock")


@contextmanager
def serving(location: Path | str) -> Iterator[None]:
    """Held by `maillist serve` for as long as it serves a SQLite file: a second `serve` on the
    same file is refused (two processes would each reset the other's claims at start), and
    commands that must not run beside it can tell. PostgreSQL sites run several processes."""
    if is_url(location):
        yield
        return
    path = _lock_path(location)
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            raise StoreError(
                f"another maillist serve (pid {pid}) is using {location}; a SQLite site is served "
                "by one process (PostgreSQL, for several)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def served_by(location: Path | str) -> str:
    """The pid of the `maillist serve` using this SQLite file ('' when none is)."""
    if is_url(location):
        return ""
    path = _lock_path(location)
    if not path.exists():
        return ""
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            return handle.read().strip() or "?"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return ""
