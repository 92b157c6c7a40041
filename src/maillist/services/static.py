"""`maillist archive render LIST OUT_DIR`: the archive's pages as files for any web server, at the
same paths `maillist serve --http-port` answers (OUT_DIR is the site's root).

Public archives only (a file cannot ask who reads it). A run remembers each thread's last
activity in OUT_DIR/lists/LIST/.maillist-render.json; the next run rewrites only the threads
that changed (and the list's index, months and feed, which always change with them)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from maillist import urls
from maillist.db import Conn, Store
from maillist.db import archive as db_archive
from maillist.db import lists as db_lists
from maillist.errors import BadInput, UnknownList
from maillist.mail import mboxes
from maillist.models import MailingList
from maillist.services.archive import ADMIN, Archive
from maillist.templating import Templates, default_dir

MANIFEST = ".maillist-render.json"


@dataclass(frozen=True, slots=True)
class Rendered:
    threads_written: int
    threads_kept: int


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _file(out: Path, url: str, index: bool = True) -> Path:
    """The file behind a URL path: a path ending in / (or a page) gets index.html."""
    relative = url.lstrip("/")
    return out / relative / "index.html" if index else out / relative


async def render(
    db: Store, list_address: str, out: Path, templates: Templates | None = None
) -> Rendered:
    pages = templates or Templates()
    archive = Archive(db)
    try:
        return await _render(db, archive, list_address, out, pages)
    finally:
        await archive.close()


async def _render(
    db: Store, archive: Archive, list_address: str, out: Path, pages: Templates
) -> Rendered:
    def snapshot(conn: Conn) -> tuple[MailingList, dict[int, str]]:
        mlist = db_lists.by_address(conn, list_address)
        if mlist is None:
            raise UnknownList(f"no such list: {list_address}")
        if mlist.archive != "public":
            raise BadInput(
                f"the archive of {mlist.address} is {mlist.archive}: only a public archive is "
                "rendered to static files (they cannot ask who reads them)"
            )
        threads = db_archive.threads(conn, mlist.id, 0, 10**9)
        return mlist, {t.id: t.last_activity_at for t in threads}

    mlist, activity = await db.read(snapshot)
    base = out / urls.list_url(mlist.address).strip("/")
    manifest_path = base / MANIFEST
    try:
        before: dict[str, str] = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        before = {}

    def page(name: str, **context: object) -> bytes:
        return pages.page(f"archive/{name}", viewer="", static=True, **context).encode()

    _write(out / "static" / "archive.css", (default_dir() / "archive" / "archive.css").read_bytes())
    _write(out / "static" / "badges.css", (await archive.badge_css()).encode())
    _write(out / "index.html", page("lists.html.j2", lists=await archive.lists("")))
    listing = await archive.threads(mlist.address, ADMIN, 1, per_page=len(activity) or 1)
    _write(_file(out, urls.list_url(mlist.address)), page("threads.html.j2", page=listing))
    for month, _ in listing.months:
        year, number = int(month[:4]), int(month[5:7])
        entry, posts = await archive.month(mlist.address, year, number, ADMIN)
        url = f"{urls.list_url(mlist.address)}{month[:4]}/{month[5:7]}/"
        _write(
            _file(out, url),
            page("month.html.j2", mlist=entry, posts=posts, year=year, month=number),
        )
    written = kept = 0
    for thread_id, last in activity.items():
        if (
            before.get(str(thread_id)) == last
            and _file(out, urls.thread_url(mlist.address, thread_id)).exists()
        ):
            kept += 1
            continue
        found = await archive.thread(mlist.address, thread_id, ADMIN)
        thread_url = urls.thread_url(mlist.address, thread_id)
        _write(_file(out, thread_url), page("thread.html.j2", page=found, highlight=0))
        raws = await archive.thread_raws(mlist.address, thread_id, "")  # public: no addresses
        _write(_file(out, thread_url + ".mbox", index=False), mboxes.mboxrd(raws))
        for post in found.posts:
            if post.placeholder:
                continue
            target = f"{thread_url}#m{post.id}"
            _write(_file(out, post.url), page("moved.html.j2", target=target))
        written += 1
    _write(manifest_path, json.dumps({str(k): v for k, v in activity.items()}).encode())
    return Rendered(written, kept)
