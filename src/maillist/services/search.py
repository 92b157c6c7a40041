"""Search's index for posts stored before it existed: `maillist serve` fills it in the
background at start, a few hundred posts per transaction (new posts are indexed by ingest)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from functools import partial

from maillist.db import Store
from maillist.db import archive as db_archive
from maillist.db import ingest as db_ingest
from maillist.errors import MessageRefused
from maillist.mail import mailparse
from maillist.mail.mailparse import Limits

log = logging.getLogger("maillist.search")
STEP = 200


def _text(raw: bytes) -> str:
    try:
        parsed = mailparse.parse(raw, Limits(), received_at=datetime.now(UTC), domain="invalid")
    except MessageRefused:
        return ""
    return parsed.text


def _texts(raws: list[bytes]) -> list[str]:
    return [_text(raw) for raw in raws]


async def backfill(db: Store) -> int:
    """Index every post search does not know yet; returns how many."""
    done = 0
    while True:
        rows = await db.read(partial(db_archive.unindexed, limit=STEP), heavy=True)
        if not rows:
            break
        texts = await asyncio.to_thread(_texts, [raw for _, raw, _, _ in rows])
        entries = [(row, subject, text, author)
                   for (row, _, subject, author), text in zip(rows, texts, strict=True)]  # fmt: skip
        await db.write(partial(db_ingest.index_posts, entries=entries), durable=False, heavy=True)
        done += len(rows)
    if done:
        log.info("search: indexed %d post(s) stored before search existed", done)
    return done
