"""The archive's URLs, one place for the pages, the copies' headers and the static render. Pure.

Stable by design: `/lists/LIST/` (the List-Archive header), `/lists/LIST/thread/ID`,
`/lists/LIST/msg/MESSAGE-ID` (percent-encoded: the Archived-At header), `/lists/LIST/YYYY/MM/`."""

from __future__ import annotations

from urllib.parse import quote

_ID_SAFE = "@!$&()*+;=:-._~"  # never / ? # % , < > " or space: a URL that ends where it should


def list_url(address: str) -> str:
    return f"/lists/{quote(address, safe='@')}/"


def message_url(address: str, message_id: str) -> str:
    return f"{list_url(address)}msg/{quote(message_id, safe=_ID_SAFE)}"


def thread_url(address: str, thread_id: int) -> str:
    return f"{list_url(address)}thread/{thread_id}"
