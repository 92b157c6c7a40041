"""The two sets of migrations build the same schema: tables, columns (type, NOT NULL, default),
primary keys, unique constraints, foreign keys (with their ON DELETE), CHECK lists and indexes.

SQLite's numbered migrations (db/migrations) and PostgreSQL's (db/pgmigrations) are written by
hand; this is what keeps them in step. Types compare by kind (INTEGER = bigint, REAL = double
precision, BLOB = bytea, TEXT COLLATE NOCASE = citext); the full-text table is compared by the
columns both engines give it."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from maillist.db import open_store
from maillist.db.migrate import latest as sqlite_latest
from maillist.db.postgres import PgConn, connect
from maillist.db.postgres import latest as pg_latest
from pgserver import PgCluster

Schema = dict[str, Any]
_TYPES = {
    "integer": "integer", "bigint": "integer", "text": "text", "citext": "nocase",
    "real": "real", "double precision": "real", "blob": "blob", "bytea": "blob", "": "any",
}  # fmt: skip
_SKIP = re.compile(r"^(search(_\w+)?|sqlite_\w+|maillist_schema)$")


def _default(value: str | None) -> str | None:
    if value is None or value.upper() == "NULL":
        return None
    text = re.sub(r"::[a-z ]+$", "", value.strip()).strip("()")
    try:
        return repr(float(text))
    except ValueError:
        return text


def _checks(sql: str) -> set[tuple[str, tuple[str, ...]]]:
    """Each CHECK's column and the literals it allows (both engines' spellings)."""
    found = set()
    pattern = r"\(?(\w+)\s*(?:IN\s*\(([^)]*)\)|=\s*ANY\s*\(ARRAY\[(.*?)\])"
    for match in re.finditer(pattern, sql):
        literals = re.findall(r"'([^']*)'|\b(\d+)\b", match.group(2) or match.group(3))
        found.add((match.group(1), tuple(sorted(a or b for a, b in literals))))
    return found


def sqlite_schema(path: Path) -> Schema:
    conn = sqlite3.connect(path)
    try:
        schema: Schema = {}
        tables = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
        for table, sql in tables:
            if _SKIP.match(table):
                continue
            nocase = set(re.findall(r"(\w+)\s+TEXT[^,]*COLLATE NOCASE", sql))
            columns = {}
            pk = []
            for _, name, kind, notnull, default, pk_at in conn.execute(
                f"PRAGMA table_info({table})"
            ):
                kind = "nocase" if name in nocase else _TYPES[kind.lower()]
                primary_int = pk_at and kind == "integer" and sql.count("PRIMARY KEY (") == 0
                columns[name] = (kind, bool(notnull or pk_at), _default(default), bool(primary_int))
                if pk_at:
                    pk.append((pk_at, name))
            uniques = set()
            indexes = {}
            for _, name, unique, origin, partial in conn.execute(f"PRAGMA index_list({table})"):
                cols = tuple(r[2] for r in conn.execute(f"PRAGMA index_info({name})"))
                if origin == "u":
                    uniques.add(cols)
                elif origin == "c":
                    row = conn.execute(
                        "SELECT sql FROM sqlite_master WHERE name = ?", (name,)
                    ).fetchone()
                    where = row[0].split(" WHERE ", 1)[1].strip() if partial else ""
                    indexes[name] = (bool(unique), cols, where)
            fks = {
                (r[3], r[2], r[4], r[6].upper())
                for r in conn.execute(f"PRAGMA foreign_key_list({table})")
            }
            schema[table] = {
                "columns": columns, "pk": tuple(n for _, n in sorted(pk)), "unique": uniques,
                "indexes": indexes, "fks": fks, "checks": _checks(sql),
            }  # fmt: skip
        return schema
    finally:
        conn.close()


def pg_schema(conn: PgConn) -> Schema:
    schema: Schema = {}
    tables = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    ).fetchall()
    for (table,) in tables:
        if _SKIP.match(table):
            continue
        columns = {}
        for name, kind, udt, nullable, default, identity in conn.execute(
            "SELECT column_name, data_type, udt_name, is_nullable, column_default, is_identity "
            "FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = ?",
            (table,),
        ).fetchall():
            kind = _TYPES["citext" if udt == "citext" else kind]
            columns[name] = (kind, nullable == "NO", _default(default), identity == "YES")
        constraints = conn.execute(
            "SELECT contype, pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "JOIN pg_class t ON t.oid = c.conrelid WHERE t.relname = ?",
            (table,),
        ).fetchall()
        pk: tuple[str, ...] = ()
        uniques = set()
        fks = set()
        checks: set[tuple[str, tuple[str, ...]]] = set()
        for kind, definition in constraints:
            cols = tuple(c.strip() for c in re.findall(r"\(([^)]*)\)", definition)[0].split(","))
            if kind == "p":
                pk = cols
            elif kind == "u":
                uniques.add(cols)
            elif kind == "f":
                target = re.search(r"REFERENCES (\w+)\((\w+)\)", definition)
                assert target is not None
                action = re.search(r"ON DELETE (SET NULL|CASCADE|RESTRICT)", definition)
                fks.add(
                    (cols[0], target.group(1), target.group(2),
                     action.group(1) if action else "NO ACTION")
                )  # fmt: skip
            elif kind == "c":
                checks |= _checks(definition)
        indexes = {}
        for name, definition in conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ? "
            "AND schemaname = current_schema()",
            (table,),
        ).fetchall():
            if name.endswith(("_pkey", "_key")):
                continue
            shape = re.search(r"\(([^)]*)\)(?: WHERE \((.*)\))?$", definition)
            assert shape is not None, definition
            cols = tuple(c.strip() for c in shape.group(1).split(","))
            indexes[name] = (" UNIQUE " in definition, cols, shape.group(2) or "")
        schema[table] = {
            "columns": columns, "pk": pk, "unique": uniques, "indexes": indexes, "fks": fks,
            "checks": checks,
        }  # fmt: skip
    return schema


@pytest.fixture
def schemas(tmp_path: Path, pg_cluster: PgCluster) -> tuple[Schema, Schema]:
    import asyncio

    url = pg_cluster.new_database()

    async def build() -> None:
        for location in (tmp_path / "s.db", url):
            await (await open_store(location)).close()

    asyncio.run(build())
    conn = connect(url)
    try:
        return sqlite_schema(tmp_path / "s.db"), pg_schema(conn)
    finally:
        conn.close()


def test_both_engines_are_at_the_same_version() -> None:
    assert sqlite_latest() == pg_latest()


def test_the_two_migration_sets_build_the_same_schema(schemas: tuple[Schema, Schema]) -> None:
    lite, pg = schemas
    assert sorted(lite) == sorted(pg)
    for table in lite:
        for part in ("columns", "pk", "unique", "fks", "checks", "indexes"):
            if part == "indexes":
                # PostgreSQL spells a partial index's condition its own way: compare the rest.
                got = {k: v[:2] for k, v in pg[table][part].items()}
                want = {k: v[:2] for k, v in lite[table][part].items()}
            else:
                got, want = pg[table][part], lite[table][part]
            assert got == want, (table, part)
    assert lite["messages"]["indexes"]["messages_claimed"][2] == "claimed = 1"
    assert pg["messages"]["indexes"]["messages_claimed"][2] == "claimed = 1"


def test_the_full_text_table_has_the_same_columns(tmp_path: Path, pg_cluster: PgCluster) -> None:
    """FTS5's columns on SQLite; the same, keyed by rowid, beside the tsvector on PostgreSQL."""
    import asyncio

    url = pg_cluster.new_database()

    async def build() -> None:
        for location in (tmp_path / "s.db", url):
            await (await open_store(location)).close()

    asyncio.run(build())
    lite = sqlite3.connect(tmp_path / "s.db")
    fts = [r[1] for r in lite.execute("PRAGMA table_info(search)")]
    lite.close()
    conn = connect(url)
    pg = [
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'search' "
            "ORDER BY ordinal_position"
        ).fetchall()
    ]
    key = conn.execute(
        "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c JOIN pg_class t "
        "ON t.oid = c.conrelid WHERE t.relname = 'search' AND c.contype = 'p'"
    ).fetchone()
    conn.close()
    assert fts == ["subject", "body", "author"]
    assert pg == ["rowid", *fts, "document"]
    assert key == ("PRIMARY KEY (rowid)",)
