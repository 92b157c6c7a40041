"""Threading decisions: JWZ's container algorithm over the whole References chain, with one
narrow subject rule on top for clients that send no threading headers. Pure."""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

_REPLY = re.compile(r"^\s*((re|aw|sv|fwd?|antw)(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_REPLY_ONLY = re.compile(r"^\s*(re|aw|sv|antw)(\[\d+\])?\s*:", re.IGNORECASE)
SUBJECT_FALLBACK_DAYS = 30


def strip_prefix(subject: str, prefix: str) -> str:
    """Remove every copy of the list's prefix (e.g. "[team]") and reply markers before it."""
    text = subject
    if prefix and prefix.casefold() in subject.casefold():  # most subjects: no regex at all
        text = _prefix_pattern(prefix).sub(" ", text)
    return " ".join(text.split())


@functools.lru_cache(maxsize=64)  # one pattern a list prefix
def _prefix_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(r"\s*" + re.escape(prefix) + r"\s*", flags=re.IGNORECASE)


def _base(subject: str, prefix: str) -> str:
    """The subject without reply markers and without the list's prefix, however interleaved."""
    text = strip_prefix(subject, prefix)
    previous = None
    while previous != text:
        previous = text
        text = _REPLY.sub("", text).strip()
        if prefix:
            text = strip_prefix(text, prefix)
    return text


def subject_key(subject: str, prefix: str = "") -> str:
    """The base subject a thread is known by: no Re:/Fwd: markers, no list prefix, case-folded."""
    return _base(subject, prefix).casefold()


def clean_subject(subject: str, prefix: str = "") -> str:
    """A subject as a page or a listing shows it: the list's prefix gone and reply markers
    collapsed to one "Re: " (`Re: [Team] Re: [Team] How do I` -> `Re: How do I`), as the copies
    members receive already read."""
    text = _base(subject, prefix)
    if not text:
        return subject.strip()
    return f"Re: {text}" if _REPLY.match(strip_prefix(subject, prefix)) else text


def is_reply_subject(subject: str, prefix: str = "") -> bool:
    """True for "Re: ..." (also "[team] Re: ..." and localized AW:/SV:), the fallback's trigger."""
    return bool(_REPLY_ONLY.match(strip_prefix(subject, prefix)))


def reference_chain(references: Iterable[str], in_reply_to: str, own: str) -> list[str]:
    """The ancestry a message claims, oldest first: its References, then In-Reply-To if that is
    not among them (clients that send only In-Reply-To), without repeats or its own id."""
    chain = list(references)
    if in_reply_to and in_reply_to not in chain:
        chain.append(in_reply_to)
    out: list[str] = []
    for mid in chain:
        if mid and mid != own and mid not in out:
            out.append(mid)
    return out


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a new message goes, as JWZ's container algorithm decides it."""

    parent: str | None  # the Message-ID the message hangs from
    create: tuple[str, ...]  # placeholders for ids in the chain the list does not know yet
    links: tuple[tuple[str, str], ...]  # (child, parent): chain links to set on parentless ids
    connected: tuple[str, ...]  # known or new ids that end up in the message's own tree


def place(own: str, chain: Sequence[str], parent_of: Mapping[str, str | None]) -> Placement:
    """JWZ threading (https://www.jwz.org/doc/threading.html), steps 1A-1C, for one message.

    `chain` is reference_chain(); `parent_of` maps every id the list already has a container for
    (a message or a placeholder) among the chain, the message itself and all their ancestors, to
    its parent's id (None for a root). Every id of the chain gets a container, each linked under
    the one before it unless it already has a parent or the link would close a loop; the message
    hangs from the last one (unless that would close a loop: then it is a root). So messages that
    share a missing ancestor end up under one placeholder, whichever arrives first, and the real
    message takes the placeholder's place when it comes."""
    parents: dict[str, str | None] = dict(parent_of)
    create = tuple(mid for mid in chain if mid not in parents)
    for mid in create:
        parents[mid] = None
    links: list[tuple[str, str]] = []
    for before, after in itertools.pairwise(chain):
        if parents.get(after) is None and not would_loop(after, before, parents):
            parents[after] = before
            links.append((after, before))
    parent = chain[-1] if chain else None
    if parent is not None and would_loop(own, parent, parents):
        parent = None  # headers that would make a loop: the message stays a root
    parents[own] = parent
    root = _root(own, parents)
    connected = tuple(
        mid for mid in dict.fromkeys([*chain, *parent_of]) if _root(mid, parents) == root
    )
    return Placement(parent, create, tuple(links), connected)


def would_loop(child: str, parent: str, parents: Mapping[str, str | None]) -> bool:
    """Would `parent` as the parent of `child` close a loop? Walks up from parent."""
    seen: set[str] = set()
    node: str | None = parent
    while node is not None and node not in seen:
        if node == child:
            return True
        seen.add(node)
        node = parents.get(node)
    return node is not None  # a loop already above: unsafe too


def _root(mid: str, parents: Mapping[str, str | None]) -> str:
    seen: set[str] = set()
    node = mid
    while (up := parents.get(node)) is not None and up not in seen:
        seen.add(node)
        node = up
    return node


@dataclass
class Node:
    """One message (or placeholder) in a thread tree, for listings and the archive."""

    id: int
    message_id: str
    subject: str
    date: str
    sender: str
    sender_name: str
    placeholder: bool
    badges: tuple[str, ...] = ()
    parent_id: int | None = None
    replies: list[Node] = field(default_factory=list)


def build_tree(nodes: Iterable[Node]) -> list[Node]:
    """Link nodes under their parents; roots and replies in date order. Orphans become roots.
    As JWZ's step 4 prunes empty containers: a placeholder inside a tree gives its replies to its
    own parent, and one with no replies is left out; a placeholder at the root stays, to show
    that the thread's first message never arrived."""
    by_id = {n.id: n for n in nodes}
    roots: list[Node] = []
    for node in by_id.values():
        parent = by_id.get(node.parent_id) if node.parent_id is not None else None
        (parent.replies if parent is not None else roots).append(node)
    roots = [r for r in roots if r.replies or not r.placeholder]
    stack = list(roots)
    while stack:
        node = stack.pop()
        node.replies = _without_inner_placeholders(node.replies)
        stack.extend(node.replies)
    stack = list(roots)
    while stack:
        node = stack.pop()
        node.replies.sort(key=lambda n: (n.date, n.id))
        stack.extend(node.replies)
    roots.sort(key=lambda n: (n.date, n.id))
    return roots


def _without_inner_placeholders(replies: list[Node]) -> list[Node]:
    out: list[Node] = []
    pending = list(replies)
    while pending:
        node = pending.pop()
        if node.placeholder:
            pending.extend(node.replies)  # promoted one level up (and looked at again)
        else:
            out.append(node)
    return out
