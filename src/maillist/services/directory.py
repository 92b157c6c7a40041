"""Which lists exist, for the SMTP server's RCPT checks, without a database round trip each time.

Lists change rarely and from another process (the CLI), so the server keeps them in memory and
reloads them when the copy is older than `ttl` seconds, or at once when a recipient is not found
(a list created a moment ago is never refused)."""

from __future__ import annotations

import time

from maillist.db import Store
from maillist.db import lists as db_lists
from maillist.errors import UnknownList
from maillist.models import Kind, MailingList
from maillist.people.addresses import split_recipient


class ListDirectory:
    def __init__(self, db: Store, ttl: float = 2.0) -> None:
        self._db = db
        self._ttl = ttl
        self._lists: dict[str, MailingList] = {}
        self._loaded = float("-inf")

    async def _reload(self) -> None:
        summaries = await self._db.read(db_lists.all_lists)
        self._lists = {s.list.address.lower(): s.list for s in summaries}
        self._loaded = time.monotonic()

    async def get(self, address: str) -> MailingList | None:
        if time.monotonic() - self._loaded > self._ttl:
            await self._reload()
        found = self._lists.get(address.lower())
        if found is None and time.monotonic() - self._loaded > 0.05:
            await self._reload()
            found = self._lists.get(address.lower())
        return found

    async def resolve(self, recipient: str) -> tuple[MailingList, Kind, str]:
        """(list, kind, tag) for a list address or sub-address; UnknownList/BadAddress otherwise."""
        list_address, kind, tag = split_recipient(recipient)
        mlist = await self.get(list_address)
        if mlist is None:
            raise UnknownList(f"no such list: {list_address}")
        return mlist, kind, tag

    def largest_known(self, default: int) -> int:
        """The largest size any list takes, as of the last reload (no I/O: used per connection)."""
        return max((m.max_message_size for m in self._lists.values()), default=default)

    def by_id(self) -> dict[int, MailingList]:
        return {m.id: m for m in self._lists.values()}

    async def current(self) -> dict[int, MailingList]:
        """Lists by id, reloaded only when the copy is older than the TTL (list options such as
        the prefix or footer take effect within `ttl` seconds)."""
        if time.monotonic() - self._loaded > self._ttl:
            await self._reload()
        return self.by_id()

    async def refresh(self) -> None:
        await self._reload()
