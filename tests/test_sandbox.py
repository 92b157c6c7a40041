"""The sandbox's workers start ahead of use, and a long thread's bodies are rendered across the
display workers, each one right, in reply order."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import dbutil
from maillist.db.store import Store
from maillist.errors import Unavailable
from maillist.services import archive
from maillist.services.archive import Archive
from maillist.services.sandbox import Sandbox
from test_smtp_receive import admin

LIST = "long@example.org"


async def test_warm_starts_every_worker_before_the_first_call() -> None:
    sandbox = Sandbox("warm-test", workers=2)
    try:
        await asyncio.wait_for(sandbox.warm(os.getpid), 60)
        started = {p for p in (w._process for w in sandbox._workers) if p is not None}
        assert len(started) == 2 and all(p.is_alive() for p in started)
        pids = await asyncio.gather(*(sandbox.run(os.getpid, seconds=10) for _ in range(4)))
        assert set(pids) == {p.pid for p in started}  # the same two: none started again
    finally:
        await sandbox.close()


def thread_mbox(path: Path, posts: int) -> None:
    with path.open("w") as out:
        for n in range(posts):
            parent = f"In-Reply-To: <t{n - 1}@example.org>\n" if n else ""
            out.write(
                f"From p{n}@example.org Mon Jan  1 00:00:00 2024\nFrom: P{n} <p{n}@example.org>\n"
                f"To: {LIST}\nSubject: Long\nMessage-ID: <t{n}@example.org>\n{parent}"
                f"Date: Mon, 01 Jan 2024 10:{n % 60:02d}:00 +0000\n\nPost number {n} here.\n\n"
            )


async def test_a_long_thread_is_rendered_across_the_display_workers(
    db: Store, db_path: Path, tmp_path: Path
) -> None:
    assert admin(db_path, "lists", "create", LIST).returncode == 0
    assert admin(db_path, "lists", "set", LIST, "archive", "public").returncode == 0
    thread_mbox(tmp_path / "t.mbox", 40)
    assert admin(db_path, "archive", "import", LIST, str(tmp_path / "t.mbox")).returncode == 0
    conn = dbutil.connect(db_path)
    [(thread,)] = conn.execute("SELECT DISTINCT thread_id FROM messages").fetchall()
    conn.close()
    display = Sandbox("display", workers=2)
    try:
        page = await Archive(db, display).thread(LIST, int(thread), "")
    finally:
        await display.close()
    texts = [p.body.html if p.body else "" for p in page.posts]
    assert [f"Post number {n} here." in t for n, t in enumerate(texts)] == [True] * 40, texts[:3]
    assert not any("could not be displayed" in t for t in texts)


def many_parts(message_id: str, parts: int) -> str:
    """A post whose structure costs time to read in proportion to its parts (any parser)."""
    inner = "".join("--b\nContent-Type: text/plain\n\nx\n" for _ in range(parts))
    return (
        f"From anne@example.org Mon Jan  1 00:00:00 2024\nFrom: Anne <anne@example.org>\n"
        f"To: {LIST}\nSubject: Parts\nMessage-ID: <{message_id}>\n"
        "Date: Mon, 01 Jan 2024 10:00:00 +0000\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b"\n\n'
        f"--b\nContent-Type: text/plain\n\nHello all.\n{inner}--b--\n\n"
    )


async def test_a_post_past_its_budget_is_shown_degraded_and_remembered(
    db: Store, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert admin(db_path, "lists", "create", LIST).returncode == 0
    (tmp_path / "p.mbox").write_text(many_parts("parts@example.org", 900))
    assert admin(db_path, "archive", "import", LIST, str(tmp_path / "p.mbox")).returncode == 0
    monkeypatch.setattr(archive, "BODY_SECONDS", 0.002)  # below what 900 parts take to read
    display = Sandbox("display", workers=1)
    try:
        service = Archive(db, display)
        thread = (await service.locate(LIST, "parts@example.org", archive.ADMIN))[0]
        page = await service.thread(LIST, thread, archive.ADMIN)
        [post] = page.posts
        assert post.body is not None and "could not be displayed" in post.body.html
        assert "Hello all." in post.body.html  # the text as received, escaped
        with pytest.raises(Unavailable):
            await service.part(LIST, "parts@example.org", 1, archive.ADMIN)  # no second budget
    finally:
        await display.close()
