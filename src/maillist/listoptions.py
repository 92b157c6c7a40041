"""The list options an admin may set, each with its parser. Pure: text in, typed value out."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from maillist.errors import BadAddress, BadOption
from maillist.models import Posting
from maillist.people.addresses import has_control, normalise

MAX_MESSAGE_SIZE_CAP = 100 * 1024 * 1024
_SIZE = re.compile(r"^\s*(\d+)\s*([kmKM]?)[bB]?\s*$")
_TRUE = {"yes", "true", "on", "1"}
_FALSE = {"no", "false", "off", "0"}


def _single_line(limit: int) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if has_control(value):
            raise BadOption("must be one line without control characters")
        if len(value) > limit:
            raise BadOption(f"must be at most {limit} characters")
        return value.strip()

    return parse


def _nonempty_line(limit: int) -> Callable[[str], str]:
    line = _single_line(limit)

    def parse(value: str) -> str:
        text = line(value)
        if not text:
            raise BadOption("must not be empty")
        return text

    return parse


def _posting(value: str) -> str:
    try:
        return Posting(value.strip().lower()).value
    except ValueError:
        raise BadOption("must be one of: members, open, moderated") from None


def _size(value: str) -> int:
    match = _SIZE.match(value)
    if not match:
        raise BadOption("must be a size in bytes, optionally with K or M (e.g. 10M)")
    number = int(match.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2).lower()]
    if not 1024 <= number <= MAX_MESSAGE_SIZE_CAP:
        raise BadOption(f"must be between 1K and {MAX_MESSAGE_SIZE_CAP // (1024 * 1024)}M")
    return number


def _bool(value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadOption("must be yes or no")


def _reply_to(value: str) -> str:
    text = value.strip()
    if text.lower() in {"author", "list"}:
        return text.lower()
    try:
        return normalise(text)
    except BadAddress:
        raise BadOption("must be 'author', 'list' or an email address") from None


# RFC 3986 characters, less the ones that end or split a URL inside RFC 2369's `<...>, <...>`
# (`>` `,`), quotes, and the percent sign's stray uses: a web_url can never add a URI to a header.
_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~!$&()*+;=:@/%-]*)?$")


def _url(value: str) -> str:
    text = _single_line(500)(value)
    if text and not _URL.match(text):
        raise BadOption(
            "must be a plain http(s):// URL (host, optional port and path; no spaces, quotes, "
            "commas, '<' or '>'), or empty to unset"
        )
    return text.rstrip("/")


def _subscription(value: str) -> str:
    text = value.strip().lower()
    if text not in {"confirm", "approve", "closed"}:
        raise BadOption("must be one of: confirm, approve, closed")
    return text


def _threshold(value: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise BadOption("must be a number from 1 to 100") from None
    if not 1 <= number <= 100:
        raise BadOption("must be a number from 1 to 100")
    return number


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        text = value.strip().lower()
        if text not in choices:
            raise BadOption(f"must be one of: {', '.join(choices)}")
        return text

    return parse


def _whole(low: int, high: int, says: str) -> Callable[[str], int]:
    def parse(value: str) -> int:
        text = value.strip()
        if not text.isdigit() or not low <= int(text) <= high:
            raise BadOption(f"must be {says} from {low} to {high}")
        return int(text)

    return parse


_batch = _whole(1, 1000, "a whole number")
_days = _whole(1, 30, "a whole number of days")
_hour = _whole(0, 23, "an hour (UTC)")
_warnings = _whole(0, 10, "a whole number")


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    parse: Callable[[str], Any]
    help: str


OPTIONS: dict[str, Option] = {
    o.name: o
    for o in (
        Option("name", _nonempty_line(100), "display name, used in List-Id and notices"),
        Option("description", _single_line(500), "one-line description"),
        Option("posting", _posting, "who may post: members | open | moderated"),
        Option("subject_prefix", _single_line(64), "prefix added to subjects, e.g. [team]"),
        Option("max_message_size", _size, "largest accepted post, e.g. 10M"),
        Option("reply_to", _reply_to, "Reply-To policy: author | list | an address"),
        Option("personalize", _bool, "one copy per member with VERP bounces: yes | no"),
        Option(
            "web_url", _url, "base URL of the list's web pages (archive, one-click unsubscribe)"
        ),
        Option("batch_size", _batch, "recipients per SMTP transaction, 1-1000 (default 100)"),
        Option("footer", _bool, "add the footer (author, badges, unsubscribe) to copies: yes | no"),
        Option(
            "subscription",
            _subscription,
            "joining by email: confirm (the address confirms) | approve (then a moderator) | closed",
        ),
        Option("token_days", _days, "days a confirmation token stays valid, 1-30 (default 3)"),
        Option(
            "bounce_threshold",
            _threshold,
            "bounce score that disables a member's delivery (hard 1, soft 0.5; default 5)",
        ),
        Option("bounce_stale_days", _days, "days without a bounce that reset a score (default 7)"),
        Option(
            "bounce_warnings",
            _warnings,
            "weekly warnings (each a probe) to a member disabled by bounces before removal (default 3)",
        ),
        Option(
            "dmarc",
            _choice("auto", "munge", "wrap", "none"),
            "DMARC mitigation: auto (munge From when the author's domain asks p=reject or "
            "quarantine, or its DNS fails) | munge | wrap | none",
        ),
        Option("digest_hour", _hour, "the hour (0-23, UTC) digests are sent each day (default 6)"),
        Option(
            "digest_size",
            _size,
            "waiting posts of this size send a digest before its hour, e.g. 100K (default)",
        ),
        Option(
            "archive",
            _choice("public", "private", "none"),
            "the web archive: public | private (members sign in by email) | none (default private)",
        ),
        Option(
            "unauthenticated",
            _choice("hold", "accept", "reject"),
            "a post failing its author's DMARC (a possible forgery): hold | accept (no badges) | reject",
        ),
        Option(
            "badges",
            _choice("authenticated", "unless-forged"),
            "which posts wear their author's badges: authenticated (an aligned DKIM signature or "
            "a trusted host's pass; default) | unless-forged (all but possible forgeries)",
        ),
    )
}


def parse_option(name: str, value: str) -> tuple[str, Any]:
    """Return (canonical option name, typed value) or raise BadOption naming the option."""
    key = name.strip().lower().replace("-", "_")
    option = OPTIONS.get(key)
    if option is None:
        raise BadOption(f"unknown list option {name!r}; options are: {', '.join(OPTIONS)}")
    try:
        return key, option.parse(value)
    except BadOption as exc:
        raise BadOption(f"bad value {value!r} for {key}: {exc}") from None
