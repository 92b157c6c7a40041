"""The archive as readers see it: lists, threads by activity, a thread as a forum shows it, a
post's permalink, its raw bytes and attachments, a month, search, feeds.

Every view first asks whether the reader may see the list's archive (`archive` option: public,
private to its members, none), so no page, feed, search result, part or raw message of a private
list reaches anyone else. Names, pictures and badges come from the author's account; a post
that failed its From's authentication shows no badges (models.Authentication)."""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from maillist import avatars, bodies
from maillist.db import Store
from maillist.db import archive as sql
from maillist.db import badges as db_badges
from maillist.db import lists as db_lists
from maillist.db import site as db_site
from maillist.db import subscriptions as db_subs
from maillist.db.store import Conn
from maillist.errors import NotFound, SignInRequired, StoreTimeout, Unavailable, UnknownList
from maillist.mail.render import sub_address
from maillist.models import MailingList
from maillist.services.sandbox import Overrun, Sandbox, SandboxBusy, SandboxFailed
from maillist.threads import clean_subject
from maillist.urls import list_url, message_url, thread_url

ADMIN = "\x00admin"  # the viewer the CLI reads as: never an address, never a cookie's
THREADS_PER_PAGE = 30
MAX_DEPTH = 6  # deeper replies are drawn at this indentation (with "in reply to")
BODY_CACHE = 2048  # rendered bodies kept (they are the cost of a thread page)
MIN_SHARE = 16  # bodies worth a display worker of their own


@dataclass(frozen=True, slots=True)
class Badge:
    name: str
    colour: str
    icon: str

    @property
    def css(self) -> str:
        """Its class in /static/badges.css (a style attribute would need 'unsafe-inline')."""
        return badge_class(self.name)


def badge_class(name: str) -> str:
    return "badge-" + hashlib.sha256(name.lower().encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Person:
    name: str  # the account's name; a person without one shows their address's local part
    avatar: str  # inline SVG (drawn) or '' when `picture` is set
    picture: str  # URL of the picture an admin set
    badges: tuple[Badge, ...]
    verified: bool = True


@dataclass(slots=True)
class PostView:
    id: int
    message_id: str
    url: str  # the permalink
    subject: str
    date: str
    author: Person | None
    placeholder: bool
    depth: int = 0
    parent: str = ""  # the permalink of the post this one answers
    parent_missing: bool = False
    parent_author: str = ""
    body: bodies.Body | None = None
    replies: list[PostView] = field(default_factory=list)
    held: bool = False  # waiting for a moderator: shown to the list's moderators only


@dataclass(frozen=True, slots=True)
class ListEntry:
    address: str
    name: str
    description: str
    url: str
    private: bool
    web_url: str = ""  # the public base URL an admin set (feeds build their links on it)


@dataclass(frozen=True, slots=True)
class ThreadEntry:
    url: str
    subject: str
    starter: Person | None
    posts: int
    participants: int
    last_activity: str


@dataclass(frozen=True, slots=True)
class ThreadsPage:
    mlist: ListEntry
    threads: list[ThreadEntry]
    page: int
    pages: int
    months: list[tuple[str, int]]


@dataclass(frozen=True, slots=True)
class ThreadPage:
    mlist: ListEntry
    id: int
    subject: str
    posts: list[PostView]  # in reply order, each with its depth


@dataclass(frozen=True, slots=True)
class JoinPage:
    mlist: ListEntry
    join: str  # LIST-join@DOMAIN
    leave: str
    owner: str
    subscription: str  # confirm | approve | closed


@dataclass(frozen=True, slots=True)
class SearchHit:
    post: PostView
    snippet: list[tuple[str, bool]]  # (text, matched)
    thread_url: str


def search_words(text: str) -> list[str]:
    """What a reader typed: its words (at most 20), all of them required, none of them syntax."""
    return [w for w in text.replace("\x00", " ").split() if w][:20]


BODY_SECONDS = 2.0  # one post's rendering: past it, the post is shown degraded (and remembered)
PAGE_SECONDS = 5.0  # all the rendering one page may ask for; what is left waits for a later view


class Archive:
    """One per process: renders bodies once and keeps them (bounded). Rendering parses what
    senders wrote, so it runs in the display sandbox (services/sandbox.py), never on the event
    loop: each post within BODY_SECONDS, each page within PAGE_SECONDS. A post past its budget
    is shown degraded (bodies.degraded) and remembered as such, so asking again costs nothing;
    SMTP has a sandbox of its own, so readers can never keep it waiting."""

    def __init__(self, db: Store, display: Sandbox | None = None) -> None:
        self.db = db
        self._display = display or Sandbox("display", workers=1)
        self._owns_display = display is None
        self._bodies: OrderedDict[int, bodies.Body] = OrderedDict()
        self._failed: OrderedDict[int, str] = OrderedDict()  # rows past their budget: why

    async def close(self) -> None:
        if self._owns_display:
            await self._display.close()

    # -- who may read -------------------------------------------------------------------
    def _readable(self, conn: Conn, address: str, viewer: str) -> MailingList:
        mlist = db_lists.by_address(conn, address)
        if viewer == ADMIN:  # the `maillist` command: the site's admin
            if mlist is None:
                raise UnknownList(f"no such list: {address}")
            return mlist
        if mlist is None or mlist.archive == "none":
            raise NotFound(f"no archive here for {address}")
        if mlist.archive == "private" and not (
            viewer and db_subs.is_member(conn, mlist.id, viewer)
        ):
            raise SignInRequired(f"The archive of {mlist.address} is for its members.")
        return mlist

    async def lists(self, viewer: str) -> list[ListEntry]:
        """Public archives, and the private ones the reader belongs to."""

        def snapshot(conn: Conn) -> list[ListEntry]:
            found = [s.list for s in db_lists.all_lists(conn)]
            return [
                _entry(m)
                for m in found
                if m.archive == "public"
                or (m.archive == "private" and viewer and db_subs.is_member(conn, m.id, viewer))
            ]

        return await self.db.read(snapshot)

    async def threads(
        self, address: str, viewer: str, page: int = 1, per_page: int = THREADS_PER_PAGE
    ) -> ThreadsPage:
        def snapshot(conn: Conn) -> ThreadsPage:
            mlist = self._readable(conn, address, viewer)
            total = sql.count_threads(conn, mlist.id)
            pages = max(1, -(-total // per_page))
            shown = min(max(page, 1), pages)
            rows = sql.threads(conn, mlist.id, (shown - 1) * per_page, per_page)
            people = _People(conn, [r.starter for r in rows])
            months = sql.months(conn, mlist.id)
            threads = [
                ThreadEntry(
                    thread_url(mlist.address, r.id),
                    clean_subject(r.subject, mlist.subject_prefix) or "(no subject)",
                    people.get(r.starter, True, r.starter_name),
                    r.posts,
                    r.participants,
                    r.last_activity_at,
                )
                for r in rows
            ]
            return ThreadsPage(_entry(mlist), threads, shown, pages, months)

        return await self.db.read(snapshot)

    async def thread(self, address: str, thread_id: int, viewer: str) -> ThreadPage:
        cached = set(self._bodies)  # read here: the snapshot may run in another thread

        def snapshot(conn: Conn) -> _Thread:
            mlist = self._readable(conn, address, viewer)
            found = sql.thread(conn, mlist.id, thread_id)
            if found is None or all(p.placeholder for p in found[1]):
                raise NotFound(f"no thread {thread_id} in {mlist.address}")
            subject, rows = found
            if _moderates(conn, mlist, viewer):  # held posts, marked, for their moderators
                rows = [
                    replace(r, placeholder=False) if r.verdict == "hold" and r.received else r
                    for r in rows
                ]
            people = _People(conn, [r.sender for r in rows if not r.placeholder])
            raws = sql.raws(conn, [r.id for r in rows if not r.placeholder and r.id not in cached])
            return _Thread(mlist, subject, rows, people, raws)

        mlist, subject, rows, people, raws = await self.db.read(snapshot)
        await self._render(mlist, rows, raws)
        views = {r.id: self._view(mlist, r, people, raws) for r in rows}
        ordered = _reply_order(list(views.values()), {r.id: r.parent_id for r in rows})
        shown = clean_subject(subject, mlist.subject_prefix)
        return ThreadPage(_entry(mlist), thread_id, shown or "(no subject)", ordered)

    async def joining(self, address: str) -> JoinPage:
        """How a visitor joins the list (its archive is public or private: a list with no
        archive has no pages at all)."""

        def snapshot(conn: Conn) -> JoinPage:
            mlist = db_lists.by_address(conn, address)
            if mlist is None or mlist.archive == "none":
                raise NotFound(f"no archive here for {address}")
            return JoinPage(
                _entry(mlist), sub_address(mlist, "join"), sub_address(mlist, "leave"),
                sub_address(mlist, "owner"), mlist.subscription,
            )  # fmt: skip

        return await self.db.read(snapshot)

    async def locate(self, address: str, message_id: str, viewer: str) -> tuple[int, int]:
        """(thread id, row) of a delivered post: where its permalink shows it."""

        def snapshot(conn: Conn) -> tuple[int, int]:
            mlist = self._readable(conn, address, viewer)
            found = sql.post(conn, mlist.id, message_id)
            if found is None or found.thread_id is None:
                raise NotFound(f"no message <{message_id}> in the archive of {address}")
            return found.thread_id, found.id

        return await self.db.read(snapshot)

    async def raw(self, address: str, message_id: str, viewer: str) -> bytes:
        """The bytes as received for the list's members; for anyone else (a public archive's
        anonymous reader) the post's text with no address in it (bodies.public_copy)."""

        def snapshot(conn: Conn) -> tuple[sql.PostRow | None, dict[int, bytes], bool]:
            mlist = self._readable(conn, address, viewer)
            found = sql.post(conn, mlist.id, message_id)
            data = sql.raws(conn, [found.id]) if found is not None else {}
            return found, data, _sees_addresses(conn, mlist, viewer)

        found, data, whole = await self.db.read(snapshot)
        if found is None or found.id not in data:
            raise NotFound(f"no message <{message_id}> in the archive of {address}")
        if whole:
            return data[found.id]
        [public] = await self._public([data[found.id]])
        return public

    async def part(
        self, address: str, message_id: str, index: int, viewer: str
    ) -> tuple[bytes, str, str]:
        """(bytes, content type, file name) of one part of a post, taken out in the display
        sandbox; raises Unavailable when the post is past its budget (now or before)."""

        def snapshot(conn: Conn) -> tuple[sql.PostRow | None, dict[int, bytes]]:
            mlist = self._readable(conn, address, viewer)
            found = sql.post(conn, mlist.id, message_id)
            return found, sql.raws(conn, [found.id]) if found is not None else {}

        found, data = await self.db.read(snapshot)
        if found is None or found.id not in data:
            raise NotFound(f"no message <{message_id}> in the archive of {address}")
        why = self._failed.get(found.id)
        if why is None:
            try:
                extracted = await self._display.run(
                    bodies.part, data[found.id], index, seconds=BODY_SECONDS
                )
            except (TimeoutError, SandboxFailed) as exc:
                why = self._fail(found.id, exc)
            else:
                if extracted is None:
                    raise NotFound(f"no part {index} in <{message_id}>")
                return extracted
        raise Unavailable(f"this part could not be taken out of its message ({why})")

    async def month(
        self, address: str, year: int, month: int, viewer: str
    ) -> tuple[ListEntry, list[PostView]]:
        start = f"{year:04d}-{month:02d}"
        end = f"{year + month // 12:04d}-{month % 12 + 1:02d}"

        def snapshot(conn: Conn) -> tuple[MailingList, list[sql.PostRow], _People]:
            mlist = self._readable(conn, address, viewer)
            rows = sql.month(conn, mlist.id, start, end)
            return mlist, rows, _People(conn, [r.sender for r in rows])

        mlist, rows, people = await self.db.read(snapshot)  # the views outside: the cache is ours
        return _entry(mlist), [self._view(mlist, r, people, {}) for r in rows]

    async def search(
        self, address: str, text: str, viewer: str, limit: int = 50
    ) -> tuple[ListEntry, list[SearchHit]]:
        """In the reader's thread, never on the loop, and within a time budget (a search for
        common words over a large archive is the costliest read a stranger can ask for)."""
        query = search_words(text)

        def find(conn: Conn) -> tuple[MailingList, list[sql.Hit], _People]:
            mlist = self._readable(conn, address, viewer)
            try:
                hits = sql.search(conn, mlist.id, query, limit) if query else []
            except StoreTimeout as exc:
                raise Unavailable(f"this search took too long ({exc}): try more words") from None
            return mlist, hits, _People(conn, [h.post.sender for h in hits])

        mlist, hits, people = await self.db.read(find, heavy=True)
        found = [
            SearchHit(
                self._view(mlist, h.post, people, {}),
                _marks(bodies.hide_addresses(h.snippet)),
                thread_url(mlist.address, h.post.thread_id or 0),
            )
            for h in hits
        ]
        return _entry(mlist), found

    async def latest(
        self, address: str, viewer: str, thread_id: int | None = None, limit: int = 30
    ) -> tuple[ListEntry, list[PostView]]:
        """The newest delivered posts (of one thread), with their bodies: what a feed shows."""
        cached = set(self._bodies)

        def snapshot(
            conn: Conn,
        ) -> tuple[MailingList, list[sql.PostRow], _People, dict[int, bytes]]:
            mlist = self._readable(conn, address, viewer)
            rows = sql.latest(conn, mlist.id, limit, thread_id)
            people = _People(conn, [r.sender for r in rows])
            return mlist, rows, people, sql.raws(conn, [r.id for r in rows if r.id not in cached])

        mlist, rows, people, raws = await self.db.read(snapshot)
        await self._render(mlist, rows, raws)
        return _entry(mlist), [self._view(mlist, r, people, raws) for r in rows]

    async def thread_raws(self, address: str, thread_id: int, viewer: str) -> list[bytes]:
        """Every delivered post of a thread, as received, in date order (the thread's mbox)."""

        def snapshot(conn: Conn) -> tuple[list[bytes], bool]:
            mlist = self._readable(conn, address, viewer)
            found = sql.thread(conn, mlist.id, thread_id)
            if found is None:
                raise NotFound(f"no thread {thread_id} in {mlist.address}")
            rows = [r for r in found[1] if not r.placeholder]
            raws = sql.raws(conn, [r.id for r in rows])
            return [raws[r.id] for r in rows if r.id in raws], _sees_addresses(conn, mlist, viewer)

        ordered, whole = await self.db.read(snapshot)
        return ordered if whole else await self._public(ordered)

    async def _public(self, raws: list[bytes]) -> list[bytes]:
        """Public copies, made in the display sandbox (they parse); one past its budget is
        left out with a line that says so."""
        try:
            made = await self._display.each(
                bodies.public_copy, [(raw,) for raw in raws], seconds=BODY_SECONDS,
                total=PAGE_SECONDS,
            )  # fmt: skip
        except SandboxBusy:
            made = []
        gone = b"Subject: (this message could not be shown in time)\r\n\r\n"
        return [m if isinstance(m, bytes) else gone for m in made] + [gone] * (
            len(raws) - len(made)
        )

    async def badge_css(self) -> str:
        """One rule per badge with a colour (checked to be #rrggbb when it was set)."""

        def snapshot(conn: Conn) -> str:
            styles = sql.badge_styles(conn)
            return "".join(
                f"li.badge.{badge_class(name)} {{ background: {colour}; }}\n"
                for name, (colour, _) in sorted(styles.items())
                if colour
            )

        return await self.db.read(snapshot)

    async def picture(self, key: str) -> tuple[bytes, str] | None:
        """The picture an admin set for a person, by its unguessable key (avatars.key)."""

        def snapshot(conn: Conn) -> tuple[bytes, str] | None:
            person = avatars.person_of(db_site.secret(conn), key)
            return sql.picture(conn, person) if person is not None else None

        return await self.db.read(snapshot)

    # -- drawing --------------------------------------------------------------------------
    async def _render(
        self, mlist: MailingList, rows: list[sql.PostRow], raws: dict[int, bytes]
    ) -> None:
        """The bodies a page needs and the cache lacks, rendered in the display sandbox; a post
        past its budget is shown degraded from now on, and what the page's budget did not
        reach is shown degraded this time only (a later view renders it)."""
        todo = [
            r for r in rows
            if r.id in raws and r.id not in self._bodies and r.id not in self._failed
        ]  # fmt: skip
        if not todo:
            return
        items = [(raws[r.id], message_url(mlist.address, r.message_id)) for r in todo]
        # Split across the display workers (a 200-post thread seen first: 29 ms of rendering in
        # one worker, half that in two).
        shares = max(1, min(self._display.size, len(items) // MIN_SHARE))
        size = -(-len(items) // shares)
        chunks = [(todo[i : i + size], items[i : i + size]) for i in range(0, len(items), size)]
        done = await asyncio.gather(*(self._render_share(share) for _, share in chunks))
        for (rows_, _), results in zip(chunks, done, strict=True):
            self._kept(rows_, results)

    async def _render_share(self, items: list[tuple[bytes, str]]) -> list[bodies.Body | Overrun]:
        try:
            return await self._display.each(
                bodies.render, items, seconds=BODY_SECONDS, total=PAGE_SECONDS
            )
        except SandboxBusy:
            return []

    def _kept(self, todo: list[sql.PostRow], done: list[bodies.Body | Overrun]) -> None:
        for row, result in zip(todo, done, strict=False):
            if isinstance(result, Overrun):
                self._fail(row.id, result.reason)
            else:
                self._keep(row.id, result)

    def _fail(self, row: int, why: object) -> str:
        reason = why if isinstance(why, str) else (
            f"over its {BODY_SECONDS:g} s budget" if isinstance(why, TimeoutError) else str(why)
        )  # fmt: skip
        self._failed[row] = reason
        while len(self._failed) > BODY_CACHE:
            self._failed.popitem(last=False)
        return reason

    def _keep(self, row: int, body: bodies.Body) -> None:
        self._bodies[row] = body
        while len(self._bodies) > BODY_CACHE:
            self._bodies.popitem(last=False)

    def _view(
        self, mlist: MailingList, row: sql.PostRow, people: _People, raws: dict[int, bytes]
    ) -> PostView:
        url = message_url(mlist.address, row.message_id)
        if row.placeholder:
            return PostView(row.id, row.message_id, url, "", "", None, True)
        body = self._bodies.get(row.id)
        if body is not None:
            self._bodies.move_to_end(row.id)
        elif row.id in raws:  # past its budget, now or before, or not reached in this page's
            why = self._failed.get(row.id, "not rendered in time for this page")
            body = bodies.degraded(raws[row.id], why)
        author = people.get(row.sender, row.verified, row.sender_name)
        return PostView(
            row.id, row.message_id, url, clean_subject(row.subject, mlist.subject_prefix),
            row.date, author, False, body=body,
            held=row.verdict == "hold",
        )  # fmt: skip


def _sees_addresses(conn: Conn, mlist: MailingList, viewer: str) -> bool:
    """The list's members (and the site's admin) read posts whole; anyone else reads them
    without addresses: a public archive is no harvest for spammers."""
    return viewer == ADMIN or bool(viewer and db_subs.is_member(conn, mlist.id, viewer))


def _moderates(conn: Conn, mlist: MailingList, viewer: str) -> bool:
    if not viewer or viewer == ADMIN:
        return False
    return db_subs.role_of(conn, mlist.id, viewer) in {"moderator", "owner"}


def _entry(mlist: MailingList) -> ListEntry:
    return ListEntry(
        mlist.address, mlist.name, mlist.description, list_url(mlist.address),
        mlist.archive == "private", mlist.web_url,
    )  # fmt: skip


class _Thread(NamedTuple):
    mlist: MailingList
    subject: str
    rows: list[sql.PostRow]
    people: _People
    raws: dict[int, bytes]


class _People:
    """Names, pictures and badges of the authors on a page, in three queries."""

    def __init__(self, conn: Conn, addresses: list[str]) -> None:
        self.secret = db_site.secret(conn)
        self.accounts = sql.authors(conn, addresses)
        self.badges = db_badges.for_addresses(conn, addresses)
        self.styles = sql.badge_styles(conn) if self.badges else {}
        self._shown: dict[tuple[str, bool, str], Person] = {}  # a page's authors repeat

    def get(self, address: str, verified: bool, written: str = "") -> Person | None:
        """A person as the archive shows them: the account's name; without one (a stranger on
        an open list, an imported author) the name their From gave, else the local part."""
        if not address:
            return None
        key = (address, verified, written)
        if key not in self._shown:
            self._shown[key] = self._person(address, verified, written)
        return self._shown[key]

    def _person(self, address: str, verified: bool, written: str) -> Person:
        account = self.accounts.get(address.lower())
        fallback = bodies.hide_addresses(" ".join(written.split())[:100]) or address.split("@")[0]
        shown = account.name if account is not None and account.name else fallback
        badges = tuple(
            Badge(b, *self.styles.get(b, ("", ""))) for b in self.badges.get(address.lower(), [])
        )
        if account is None:
            return Person(shown, avatars.svg(self.secret, 0, shown, address), "", (), verified)
        picture = (
            f"/pictures/{avatars.key(self.secret, account.person_id)}"
            if account.has_picture
            else ""
        )
        drawn = (
            "" if picture else avatars.svg(self.secret, account.person_id, account.name, address)
        )
        return Person(shown, drawn, picture, badges if verified else (), verified)


def _reply_order(views: list[PostView], parents: dict[int, int | None]) -> list[PostView]:
    """Depth-first in date order; a placeholder with replies stays (shown as a post the archive
    never received) and one without is left out."""
    by_id = {v.id: v for v in views}
    roots: list[PostView] = []
    for view in views:
        parent = by_id.get(parents.get(view.id) or -1)
        (parent.replies if parent is not None else roots).append(view)
    out: list[PostView] = []
    stack: list[tuple[PostView, int, PostView | None]] = [(r, 0, None) for r in reversed(roots)]
    while stack:
        view, depth, parent = stack.pop()
        if view.placeholder and not view.replies:
            continue
        view.depth = min(depth, MAX_DEPTH)
        if parent is not None:
            view.parent = parent.url
            view.parent_missing = parent.placeholder
            view.parent_author = parent.author.name if parent.author is not None else ""
        out.append(view)
        stack.extend((r, depth + 1, view) for r in reversed(view.replies))
    return out


def _marks(snippet: str) -> list[tuple[str, bool]]:
    """FTS5's snippet with \\x02 ... \\x03 around matches, as (text, matched) runs."""
    out: list[tuple[str, bool]] = []
    for i, piece in enumerate(snippet.replace("\x03", "\x02").split("\x02")):
        if piece:
            out.append((piece, i % 2 == 1))
    return out
