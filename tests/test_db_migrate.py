"""`maillist db migrate --to postgresql://...` moves a SQLite site to PostgreSQL: every table,
checked by counts and checksums; a non-empty target is refused; `maillist db check` compares.
The copy is then a working site: the same threads, search, members, and new rows after it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dbutil
from conftest import CLI_TIMEOUT, Result, assert_one_line_error, clean_env
from maillist.db import open_store
from maillist.models import Posting
from maillist.services import badges, lists, members
from pgserver import PgCluster
from test_threading import deliver, ingesting


def maillist(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "maillist", "--db", db, *args],
        capture_output=True, text=True, timeout=CLI_TIMEOUT, env=clean_env(),
    )  # fmt: skip


async def make_site(path: Path) -> None:
    """A SQLite site with members, badges, a thread whose reply came before its parent (a
    placeholder row after the reply: a reference forward in `messages`), a held post, fan-out
    jobs waiting, digests queued, search entries and an audit trail."""
    db = await open_store(path)
    try:
        await lists.create(db, "team@example.org", name="Team", posting=Posting.OPEN, actor="t")
        await members.add(db, "team@example.org", ["anne@example.org"], name="Anne", actor="t")
        await members.add(db, "team@example.org", ["bob@example.org"], actor="t")
        await badges.grant(db, "anne@example.org", "Licensee Badge", actor="t")
        async with ingesting(db) as team:
            await deliver(db, team, "r1@x", "Re: Marmalade", refs="p@x", irt="p@x")
            await deliver(db, team, "p@x", "Marmalade", date="Tue, 24 Nov 2026 09:00:00 +0000")
            await deliver(db, team, "r2@x", "Re: Marmalade", irt="r1@x")
            await deliver(db, team, "other@x", "Something else entirely")
    finally:
        await db.close()


async def test_a_sqlite_site_moves_to_postgresql(tmp_path: Path, pg_cluster: PgCluster) -> None:
    source = str(tmp_path / "site.db")
    await make_site(Path(source))
    url = pg_cluster.new_database()

    moved = maillist(source, "db", "migrate", "--to", url)
    assert moved.returncode == 0, moved.stderr
    assert "counts and checksums match" in moved.stderr
    checked = maillist(source, "db", "check", "--to", url)
    assert checked.returncode == 0, checked.stderr
    assert "DIFFERENT" not in checked.stdout and "the same rows in all 22 tables" in checked.stderr
    for table in ("messages", "threads", "outbound_jobs", "search", "audit_log", "badge_grants"):
        line = next(x for x in checked.stdout.splitlines() if x.startswith(table + " "))
        assert line.split()[1] == line.split()[2] != "0", line

    # The copy reads as the original did, and goes on from where it stopped.
    for args in (("threads", "team@example.org"), ("members", "list", "team@example.org"),
                 ("search", "team@example.org", "marmalade"), ("queue",)):  # fmt: skip
        there, here = maillist(url, *args), maillist(source, *args)
        assert there.returncode == 0, there.stderr
        if args[0] == "search":  # the same posts; each engine ranks them its own way
            assert sorted(there.stdout.splitlines()) == sorted(here.stdout.splitlines())
        else:
            assert there.stdout == here.stdout, args
    assert maillist(url, "lists", "create", "new@example.org").returncode == 0
    assert maillist(url, "members", "add", "team@example.org", "cy@example.org").returncode == 0

    # A second copy into the same (now used) database is refused, and nothing changes.
    before = dbutil.dump_url(url)
    again = maillist(source, "db", "migrate", "--to", url)
    refused = Result(again.returncode, again.stdout, again.stderr)
    assert_one_line_error(refused, "is not empty", "migrate only into a new database")
    assert dbutil.dump_url(url) == before

    # `db check` tells two databases apart, by table.
    differs = maillist(source, "db", "check", "--to", url)
    assert differs.returncode == 1
    assert "the databases differ in lists, people, subscriptions, audit_log" in differs.stderr
