"""Moving a site to another database (`maillist db migrate --to`) and comparing two databases
(`maillist db check --to`): every table copied in one transaction, verified by counts and
checksums before it commits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from maillist.db import Conn, Store, open_store
from maillist.db import transfer as sql
from maillist.errors import StoreError


@dataclass(frozen=True, slots=True)
class TableCheck:
    table: str
    source_rows: int
    target_rows: int
    source_sum: str
    target_sum: str

    @property
    def same(self) -> bool:
        return (self.source_rows, self.source_sum) == (self.target_rows, self.target_sum)


async def total_rows(source: Store) -> int:
    def snapshot(conn: Conn) -> int:
        return sum(sql.count(conn, t) for t in sql.TABLES)

    return await source.read(snapshot)


async def copy(
    source: Store, target: Store, progress: Callable[[int], None] = lambda n: None
) -> list[TableCheck]:
    """Copy every row of `source` into the empty `target` (same schema version), in one read
    snapshot and one write transaction; then compare. A difference rolls the copy back."""
    source_version, target_version = await source.schema_version(), await target.schema_version()
    if source_version != target_version:
        raise StoreError(
            f"the source's schema is version {source_version}, the target's {target_version}: "
            "run the same maillist on both (open the source once to upgrade it)"
        )

    def transaction(src: Conn, dst: Conn) -> list[TableCheck]:
        occupied = sql.occupied(dst)
        if occupied:
            listed = ", ".join(f"{table} ({n})" for table, n in occupied[:4])
            raise StoreError(
                f"the target {target.describe()} is not empty: {listed}; "
                "migrate only into a new database"
            )
        sql.empty(dst)
        for table in sql.TABLES:
            names = sql.columns(src, table)
            for chunk in sql.rows(src, table, names):
                sql.insert(dst, table, names, chunk)
                progress(len(chunk))
        for pairs in sql.parents(src):
            sql.restore_parents(dst, pairs)
        sql.restart_keys(dst)
        checks = [_check(src, dst, table) for table in sql.TABLES]
        bad = [c.table for c in checks if not c.same]
        if bad:
            raise StoreError(f"the copy differs from the source in {', '.join(bad)}; nothing kept")
        return checks

    return await source.beside(target, transaction, write_other=True)


async def compare(source: Store, target: Store) -> list[TableCheck]:
    return await source.beside(
        target, lambda src, dst: [_check(src, dst, table) for table in sql.TABLES]
    )


def _check(src: Conn, dst: Conn, table: str) -> TableCheck:
    names = sql.columns(src, table)
    rows, total = sql.checksum(src, table, names)
    other_rows, other_total = sql.checksum(dst, table, names)
    return TableCheck(table, rows, other_rows, total, other_total)


async def migrate_to(
    source: Store, location: Path | str, progress: Callable[[int], None] = lambda n: None
) -> list[TableCheck]:
    """`copy` into the database at `location`, made (with the newest schema) if need be."""
    target = await open_store(location, create=True)
    try:
        return await copy(source, target, progress)
    finally:
        await target.close()


async def compare_with(source: Store, location: Path | str) -> list[TableCheck]:
    target = await open_store(location, create=False)
    try:
        return await compare(source, target)
    finally:
        await target.close()
