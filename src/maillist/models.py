"""One frozen dataclass per row that crosses a module boundary, and the enums they use."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    MEMBER = "member"
    MODERATOR = "moderator"
    OWNER = "owner"


class Mode(StrEnum):
    REGULAR = "regular"
    DIGEST = "digest"
    NOMAIL = "nomail"


class Status(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"


class Posting(StrEnum):
    MEMBERS = "members"
    OPEN = "open"
    MODERATED = "moderated"


class Kind(StrEnum):
    """Which address of a list a message came to: the list itself or one of its sub-addresses."""

    POST = "post"
    REQUEST = "request"
    OWNER = "owner"
    JOIN = "join"
    LEAVE = "leave"
    BOUNCES = "bounces"
    CONFIRM = "confirm"


class Verdict(StrEnum):
    """What became of a message: decided at ingest (the first five), or by a moderator."""

    ACCEPT = "accept"
    HOLD = "hold"
    REJECT = "reject"
    DISCARD = "discard"
    UNHANDLED = "unhandled"
    APPROVED = "approved"
    REJECTED = "rejected"
    DISCARDED = "discarded"


VISIBLE = frozenset({Verdict.ACCEPT, Verdict.APPROVED})  # delivered: shown in threads


class BatchState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    DEFERRED = "deferred"
    SENT = "sent"
    FAILED = "failed"


class RequestAction(StrEnum):
    """What a request (a confirmation token, db/requests.py) asks for."""

    JOIN = "join"
    LEAVE = "leave"
    MODE = "mode"  # a change of delivery mode, named in the request's detail
    MODERATE = "moderate"  # a moderator's token for a held post


class RequestState(StrEnum):
    PENDING = "pending"  # waiting for its token
    AWAITING = "awaiting"  # confirmed, waiting for a moderator (`subscription approve`)
    DONE = "done"
    DENIED = "denied"
    CANCELLED = "cancelled"


class AuthResult(StrEnum):
    """A DKIM, ARC or DMARC result (RFC 8601), as mail/dmarc.py and services/authentication.py
    produce them and Authentication-Results spell them."""

    PASS = "pass"
    FAIL = "fail"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass(frozen=True, slots=True)
class MailingList:
    id: int
    address: str
    name: str
    description: str
    posting: Posting
    subject_prefix: str
    max_message_size: int
    reply_to: str
    personalize: bool
    web_url: str
    created_at: str
    batch_size: int = 100
    footer: bool = True
    subscription: str = "confirm"  # confirm | approve | closed (joining by email)
    token_days: int = 3  # confirmation tokens expire after this many days
    bounce_threshold: float = 5.0  # a member's bounce score that disables delivery
    bounce_stale_days: int = 7  # a score with no bounce for this long starts again
    bounce_warnings: int = 3  # weekly warnings to a disabled member before removal
    dmarc: str = "auto"  # auto | munge | wrap | none (mail/dmarc.py)
    unauthenticated: str = "hold"  # a post failing its author's DMARC: hold | accept | reject
    badges: str = "authenticated"  # who wears badges: authenticated | unless-forged
    archive: str = "private"  # who reads the web archive: public | private (members) | none
    digest_hour: int = 6  # the hour (UTC) digests go out
    digest_size: int = 102400  # waiting posts of this many bytes send a digest sooner

    @property
    def local_part(self) -> str:
        return self.address.rsplit("@", 1)[0]

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[1]


@dataclass(frozen=True, slots=True)
class Authentication:
    """What a post's authentication amounted to on receipt (services/authentication.py)."""

    from_domain: str = ""
    dkim: tuple[tuple[str, AuthResult], ...] = ()  # (d=, pass | fail | temperror | permerror)
    arc: AuthResult = AuthResult.NONE  # the chain on receipt: pass | fail | none
    dmarc: AuthResult = AuthResult.NONE  # pass | fail | none (no policy published) | temperror
    policy: str = ""  # the author domain's p=: reject | quarantine | none | "" | unknown
    via: str = ""  # what passed DMARC when our own DKIM check did not: "trusted host", "arc by d"
    proven: bool = False  # the From's domain vouched for it: an aligned DKIM pass, or `via`

    @property
    def forged(self) -> bool:
        """The author's domain asks receivers to act on DMARC failures (p=quarantine or
        p=reject) and the post fails DMARC: the From is not proven. (p=none asks for no action:
        such a domain is treated as one without a policy, as receivers do.)"""
        return self.dmarc == AuthResult.FAIL and self.policy in {"quarantine", "reject"}

    @property
    def verified(self) -> bool:
        """Not a possible forgery, and the check got its answers (a DNS failure proves nothing
        either way): what a list with `badges unless-forged` lets wear badges."""
        return not self.forged and self.dmarc != AuthResult.TEMPERROR

    def wears_badges(self, rule: str) -> bool:
        """Whether the post may wear its author's badges under the list's `badges` option:
        `authenticated` (the default) asks for proof, `unless-forged` for no forgery."""
        return self.proven if rule == "authenticated" else self.verified


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    address: str
    name: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Member:
    """A subscription seen from the list: who, in which role and mode, with their badges."""

    address: str
    name: str
    role: Role
    mode: Mode
    status: Status
    badges: tuple[str, ...] = ()
    bounce_score: float = 0.0
    disabled_reason: str = ""  # "bounces" when bounce processing disabled delivery


@dataclass(frozen=True, slots=True)
class BadgeGrant:
    address: str
    name: str
    badge: str
    granted_at: str
    granted_by: str


@dataclass(frozen=True, slots=True)
class Badge:
    name: str
    holders: int


@dataclass(frozen=True, slots=True)
class ListSummary:
    list: MailingList
    members: int
    moderators: int
    owners: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    target: str
    detail: str


@dataclass(frozen=True, slots=True)
class NewMember:
    """One member to add: already validated and normalised."""

    address: str
    name: str = ""
    role: Role = Role.MEMBER
    mode: Mode = Mode.REGULAR


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One CSV data row as read, before validation; `line` is its line number in the file."""

    line: int
    address: str
    name: str = ""
    role: str = ""
    mode: str = ""


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class ImportReport:
    added: int
    already: int
    invalid: tuple[RowProblem, ...] = field(default_factory=tuple)
    applied: bool = True


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message row (raw bytes left out unless asked for). `raw is None` marks a placeholder."""

    id: int
    list_id: int
    kind: str
    message_id: str
    thread_id: int | None
    parent_id: int | None
    envelope_from: str
    recipient: str
    sender: str
    sender_name: str
    subject: str
    date: str
    in_reply_to: str
    refs: str
    size: int
    received_at: str
    verdict: str
    reasons: str
    placeholder: bool
    raw: bytes | None = None
    auth: str = ""  # DKIM/ARC/DMARC results on receipt (RFC 8601 style), '' if not checked
    author_policy: str = ""
    verified: bool = True


@dataclass(frozen=True, slots=True)
class HeldMessage:
    id: int
    list_address: str
    message_id: str
    sender: str
    subject: str
    date: str
    reason: str
    held_at: str
    decision: str | None


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    id: int
    subject: str
    started_at: str
    last_activity_at: str
