"""Threading decisions, by ids first (public-inbox style) with one narrow subject rule on top. Pure."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

_REPLY = re.compile(r"^\s*((re|aw|sv|fwd?|antw)(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_REPLY_ONLY = re.compile(r"^\s*(re|aw|sv|antw)(\[\d+\])?\s*:", re.IGNORECASE)
SUBJECT_FALLBACK_DAYS = 30


def strip_prefix(subject: str, prefix: str) -> str:
    """Remove every copy of the list's prefix (e.g. "[team]") and reply markers before it."""
    text = subject
    if prefix:
        text = re.sub(r"\s*" + re.escape(prefix) + r"\s*", " ", text, flags=re.IGNORECASE)
    return " ".join(text.split())


def subject_key(subject: str, prefix: str = "") -> str:
    """The base subject a thread is known by: no Re:/Fwd: markers, no list prefix, case-folded."""
    text = strip_prefix(subject, prefix)
    previous = None
    while previous != text:
        previous = text
        text = _REPLY.sub("", text).strip()
        if prefix:
            text = strip_prefix(text, prefix)
    return text.casefold()


def is_reply_subject(subject: str, prefix: str = "") -> bool:
    """True for "Re: ..." (also "[team] Re: ..." and localized AW:/SV:), the fallback's trigger."""
    return bool(_REPLY_ONLY.match(strip_prefix(subject, prefix)))


def pick_parent(
    references: Iterable[str], in_reply_to: str, known: Callable[[str], bool]
) -> str | None:
    """Parent = the last id in References that the list knows, else In-Reply-To.

    When neither names a known message, In-Reply-To (or the last reference, for clients that send
    only References) becomes the parent anyway: the caller keeps a placeholder for it, so a parent
    that arrives later is linked to the replies that came first."""
    refs = list(references)
    for ref in reversed(refs):
        if known(ref):
            return ref
    if in_reply_to:
        return in_reply_to
    return refs[-1] if refs else None


def creates_cycle(child: int, parent: int, parent_of: Mapping[int, int | None]) -> bool:
    """Would making `parent` the parent of `child` loop? Walks up from parent (bounded)."""
    seen = set()
    node: int | None = parent
    while node is not None and node not in seen:
        if node == child:
            return True
        seen.add(node)
        node = parent_of.get(node)
    return node is not None  # an existing loop above counts as unsafe too


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
    """Link nodes under their parents; roots and replies in date order. Orphans become roots."""
    by_id = {n.id: n for n in nodes}
    roots: list[Node] = []
    for node in by_id.values():
        parent = by_id.get(node.parent_id) if node.parent_id is not None else None
        (parent.replies if parent is not None else roots).append(node)
    stack = list(roots)
    while stack:
        node = stack.pop()
        node.replies.sort(key=lambda n: (n.date, n.id))
        stack.extend(node.replies)
    roots.sort(key=lambda n: (n.date, n.id))
    return roots
