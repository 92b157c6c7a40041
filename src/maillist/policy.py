"""What happens to a post: rules collect reasons, the strictest verdict wins. Pure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from maillist.models import Authentication, MailingList, Posting, Verdict

# Strictest first: a loop is discarded even if the sender is also a non-member.
ORDER = (Verdict.DISCARD, Verdict.REJECT, Verdict.HOLD, Verdict.ACCEPT)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the rules look at, gathered by the ingest service."""

    mlist: MailingList
    sender: str | None
    sender_problem: str
    is_member: bool
    list_ids: tuple[str, ...]
    x_loops: tuple[str, ...]
    auto_submitted: str
    precedence: str
    autoreply: bool = False  # X-Autoreply / X-Autorespond: a vacation program's own marker
    came_back: bool = False  # the body is that of a copy this list sent lately (mail/loops.py)
    auth: Authentication | None = None  # DKIM/ARC/DMARC on receipt (None: not checked)


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reasons: tuple[str, ...]


def list_id_value(mlist: MailingList) -> str:
    """The RFC 2919 list identifier, `local.domain`, as it appears inside List-Id's angle brackets."""
    return f"{mlist.local_part}.{mlist.domain}".lower()


def _loop(f: Facts) -> tuple[Verdict, str] | None:
    own = list_id_value(f.mlist)
    if any(f"<{own}>" in value.lower() or value.strip().lower() == own for value in f.list_ids):
        return Verdict.DISCARD, f"loop: carries this list's own List-Id <{own}>"
    if f.mlist.address.lower() in f.x_loops:
        return Verdict.DISCARD, "loop: carries this list's own X-Loop"
    if f.came_back:
        return Verdict.DISCARD, "loop: the body of a copy this list sent lately"
    return None


def _auto(f: Facts) -> tuple[Verdict, str] | None:
    """Mail a program wrote on its own (RFC 3834 Auto-Submitted, vacation markers, junk) is
    dropped. `Precedence: bulk|list` is also set by real people's mail passing through another
    list, a gateway or an archive: a moderator decides on those."""
    if f.auto_submitted and f.auto_submitted.split(";")[0].strip() != "no":
        return Verdict.DISCARD, f"automatic mail: Auto-Submitted: {f.auto_submitted[:60]}"
    if f.autoreply:
        return Verdict.DISCARD, "automatic mail: an auto-reply (X-Autoreply/X-Autorespond)"
    if f.precedence == "junk":
        return Verdict.DISCARD, "automatic mail: Precedence: junk"
    if f.precedence in {"bulk", "list"}:
        return Verdict.HOLD, (
            f"Precedence: {f.precedence} (mail from another list, a gateway or a bulk sender?)"
        )
    return None


def _sender(f: Facts) -> tuple[Verdict, str] | None:
    if f.sender is None:
        return Verdict.HOLD, f"sender unusable: {f.sender_problem}"
    return None


def _posting(f: Facts) -> tuple[Verdict, str] | None:
    if f.mlist.posting is Posting.MODERATED:
        return Verdict.HOLD, "the list is moderated"
    if f.mlist.posting is Posting.MEMBERS and f.sender is not None and not f.is_member:
        return Verdict.HOLD, f"post from a non-member: {f.sender}"
    return None


def _authentic(f: Facts) -> tuple[Verdict, str] | None:
    """A From that names a member gets the member's rights and badges: one that fails its
    domain's DMARC may be a forgery. `accept` lets it through without the badges."""
    if f.auth is None or not f.auth.forged or f.mlist.unauthenticated == "accept":
        return None
    verdict = Verdict.REJECT if f.mlist.unauthenticated == "reject" else Verdict.HOLD
    dkim = ", ".join(f"dkim={r} d={d}" for d, r in f.auth.dkim) or "no DKIM signature"
    return verdict, (
        f"possible forgery: {f.auth.from_domain} publishes DMARC p={f.auth.policy} and the post "
        f"fails it ({dkim}, arc={f.auth.arc})"
    )


RULES: tuple[tuple[str, Callable[[Facts], tuple[Verdict, str] | None]], ...] = (
    ("loop", _loop),
    ("automatic", _auto),
    ("sender", _sender),
    ("posting", _posting),
    ("authentic", _authentic),
)


def decide(facts: Facts) -> Decision:
    hits = [hit for _, rule in RULES if (hit := rule(facts)) is not None]
    if not hits:
        return Decision(Verdict.ACCEPT, ())
    verdict = min((v for v, _ in hits), key=ORDER.index)
    return Decision(verdict, tuple(reason for _, reason in hits))
