"""Schema migrations: a database made by an older maillist opens, upgraded, in a newer one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import dbutil
from maillist.db import Store, migrate
from maillist.errors import StoreError
from maillist.services import badges, lists, members


async def test_fresh_database_is_at_latest_version(db: Store) -> None:
    assert await db.schema_version() == migrate.latest() >= 2


async def test_version_one_database_upgrades_with_data_intact(db_path: Path) -> None:
    old = await Store.open(db_path, migrate_to=1)
    assert await old.schema_version() == 1
    await old.close()
    # Write the way maillist 0001 did: plain rows in the original tables.
    conn = sqlite3.connect(db_path)
    assert "messages" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.execute(
        "INSERT INTO lists (address, name, created_at) VALUES ('old@example.org', 'Old', 't0')"
    )
    conn.execute(
        "INSERT INTO people (address, name, created_at) VALUES ('anne@example.org', 'Anne', 't0')"
    )
    conn.execute("INSERT INTO subscriptions (list_id, person_id, created_at) VALUES (1, 1, 't0')")
    conn.execute("INSERT INTO badges (name, created_at) VALUES ('Licensee Badge', 't0')")
    conn.execute(
        "INSERT INTO badge_grants (person_id, badge_id, granted_at, granted_by) "
        "VALUES (1, 1, 't0', 'cli')"
    )
    conn.commit()
    conn.close()

    new = await Store.open(db_path)
    try:
        assert await new.schema_version() == migrate.latest()
        found = await members.members(new, "old@example.org")
        assert [(m.address, m.name, m.badges) for m in found] == [
            ("anne@example.org", "Anne", ("Licensee Badge",))
        ]
        # The upgraded database takes new writes in both old and new tables.
        await lists.create(new, "new@example.org", actor="test")
        await badges.grant(new, "anne@example.org", "Training Badge", actor="test")
    finally:
        await new.close()
    conn = sqlite3.connect(db_path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert {"messages", "threads", "held_messages", "outbound_jobs", "outbound_batches"} <= tables


async def test_reopening_is_idempotent(db_path: Path) -> None:
    for _ in range(3):
        db = await Store.open(db_path)
        assert await db.schema_version() == migrate.latest()
        await db.close()


async def test_newer_database_is_refused(db_path: Path) -> None:
    await (await Store.open(db_path)).close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {migrate.latest() + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this maillist supports"):
        await Store.open(db_path)


@dbutil.sqlite_only
async def test_pragmas(db: Store, db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_statement_splitter_handles_triggers_and_strings() -> None:
    sql = """-- comment; with a semicolon
CREATE TABLE t (a TEXT DEFAULT 'x;y');
CREATE TRIGGER tr AFTER INSERT ON t BEGIN
    UPDATE t SET a = 'z;' WHERE rowid = new.rowid;
END;
"""
    statements = migrate._statements(sql)
    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [number for number, _ in migrate.available()]
    assert versions == list(range(1, len(versions) + 1))


async def test_version_two_database_upgrades_with_every_reference_intact(db_path: Path) -> None:
    """0003 rebuilds messages and outbound_jobs: rows, ids and the rows that point at them stay."""
    old = await Store.open(db_path, migrate_to=2)
    await old.close()
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.executescript(
        """
        INSERT INTO lists (address, name, created_at) VALUES ('team@example.org', 'Team', 't0');
        INSERT INTO threads (list_id, started_at, last_activity_at) VALUES (1, 't0', 't0');
        INSERT INTO messages (list_id, message_id, thread_id, raw, verdict)
            VALUES (1, 'root@x', 1, X'00', 'accept');
        INSERT INTO messages (list_id, message_id, thread_id, parent_id, raw, verdict)
            VALUES (1, 'held@x', 1, 1, X'00', 'hold');
        INSERT INTO messages (list_id, message_id, thread_id, parent_id)
            VALUES (1, 'placeholder@x', 1, NULL);
        INSERT INTO held_messages (message_id, list_id, reason, held_at) VALUES (2, 1, 'r', 't0');
        INSERT INTO outbound_jobs (message_id, list_id, state, created_at)
            VALUES (1, 1, 'expanded', 't0');
        INSERT INTO outbound_batches (job_id, recipients, state, next_attempt_at, last_error,
                                      created_at)
            VALUES (1, 'bob@example.org', 'deferred', 't9', '451 later', 't0');
        INSERT INTO delivery_failures (job_id, list_id, address, reply, at)
            VALUES (1, 1, 'carl@example.org', '550 no', 't1');
        """
    )
    conn.commit()
    conn.close()
    new = await Store.open(db_path)
    await new.close()
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("SELECT id, message_id, claimed, parent_id FROM messages").fetchall() == [
            (1, "root@x", 1, None), (2, "held@x", 0, 1), (3, "placeholder@x", 1, None),
        ]  # fmt: skip
        assert conn.execute("SELECT message_id FROM held_messages").fetchall() == [(2,)]
        assert conn.execute("SELECT id, state, last_error FROM outbound_jobs").fetchall() == [
            (1, "expanded", "")
        ]
        assert conn.execute("SELECT job_id, last_error_at FROM outbound_batches").fetchall() == [
            (1, "t9")
        ]
        assert conn.execute("SELECT job_id FROM delivery_failures").fetchall() == [(1,)]
        # The references still lead to the rebuilt tables: deleting a list cascades through them.
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM lists")
        for table in ("messages", "held_messages", "outbound_jobs", "outbound_batches"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,), table
    finally:
        conn.close()
