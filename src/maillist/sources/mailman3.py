"""A Mailman 3 list through its REST API (API 3.1, HTTP basic auth), read as Postorius reads it:
the list's config, its rosters (member, owner, moderator, nonmember), each member's delivery
preferences, bans and held messages; the history from an mbox (HyperKitty's export)."""

from __future__ import annotations

import base64
import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maillist.errors import BadInput
from maillist.models import Mode, Role
from maillist.sources import mbox
from maillist.sources.plan import HeldPost, ListPlan, Subscriber, without_post_number

PAGE = 1000  # roster entries a request
TIMEOUT = 30.0  # seconds for one REST request
MAX_ANSWER = 64 * 1024 * 1024  # bytes of one REST answer (a page of 1,000 members is ~600 KB)
READERS = 4  # preference requests in flight (Mailman's REST is one gunicorn worker by default)
_STALE = re.compile(
    r"^(\d+)d(?:(\d+(?:\.\d+)?)s)?$"
)  # a timedelta as REST writes it: 7d, 0d3600.0s


class NotFound(BadInput):
    """Mailman answered 404."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:  # the password must not follow a redirect
        return None


# No proxy from the environment and no redirects: the Authorization header goes to --rest only.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())

MODES = {
    "regular": Mode.REGULAR, "plaintext_digests": Mode.DIGEST, "mime_digests": Mode.DIGEST,
    "summary_digests": Mode.DIGEST,
}  # fmt: skip
NONMEMBER_RULES = (
    "accept_these_nonmembers", "hold_these_nonmembers", "reject_these_nonmembers",
    "discard_these_nonmembers",
)  # fmt: skip
STATE = {
    "created_at", "digest_last_sent_at", "last_post_at", "next_digest_number", "post_id",
    "volume", "usenet_watermark", "moderator_password", "http_etag", "self_link",
    "bounces_address", "join_address", "leave_address", "owner_address", "request_address",
    "no_reply_address",
}  # fmt: skip
READ = {
    *NONMEMBER_RULES,
    "display_name", "description", "subject_prefix", "max_message_size", "reply_goes_to_list",
    "reply_to_address", "subscription_policy", "archive_policy", "default_member_action",
    "default_nonmember_action", "personalize", "bounce_score_threshold",
    "bounce_info_stale_after", "bounce_you_are_disabled_warnings", "dmarc_mitigate_action",
    "posting_address", "fqdn_listname", "list_name", "mail_host",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Rest:
    """Where Mailman's REST API is, and who to be there."""

    url: str
    user: str
    password: str = field(repr=False)

    def get(self, path: str, **query: object) -> dict[str, Any]:
        base = self.url.rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise BadInput(f"--rest must be an http(s) URL, not {self.url!r}")
        target = f"{base}/3.1/{path.lstrip('/')}"
        if query:
            target += "?" + urllib.parse.urlencode(query)
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        try:
            request = urllib.request.Request(target, headers={"Authorization": f"Basic {token}"})
            with _OPENER.open(request, timeout=TIMEOUT) as answer:
                body = answer.read(MAX_ANSWER + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                raise BadInput(f"Mailman's REST API refused user {self.user!r}: check "
                               "MAILMAN_REST_PASSWORD and --user") from None  # fmt: skip
            if exc.code == 404:
                raise NotFound(f"Mailman's REST API has no {path}") from None
            raise BadInput(f"Mailman's REST API answered {exc.code} for {path}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            why = getattr(exc, "reason", None) or exc or type(exc).__name__
            raise BadInput(f"cannot read Mailman's REST API at {self.url}: {why}") from None
        if len(body) > MAX_ANSWER:
            raise BadInput(f"Mailman's REST API sent over {MAX_ANSWER:,} bytes for {path}")
        try:
            found = json.loads(body)
        except ValueError:
            raise BadInput(f"Mailman's REST API sent no JSON for {path}") from None
        if not isinstance(found, dict):
            raise BadInput(f"Mailman's REST API sent no JSON object for {path}")
        return found

    def entries(self, path: str) -> Iterator[dict[str, Any]]:
        """Every entry of a collection, a page at a time (entries that are not objects are
        skipped; Mailman leaves `entries` out of an empty collection)."""
        page = 1
        while True:
            answer = self.get(path, count=PAGE, page=page)
            found = answer.get("entries")
            found = found if isinstance(found, list) else []
            yield from (entry for entry in found if isinstance(entry, dict))
            total = answer.get("total_size")
            if len(found) < PAGE or not isinstance(total, int) or page * PAGE >= total:
                return
            page += 1


def read(rest: Rest, list_id: str, archive: Path | None = None) -> ListPlan:
    wanted = list_id.strip().replace("@", ".", 1) if "@" in list_id else list_id.strip()
    wanted = urllib.parse.quote(wanted, safe="")
    try:
        found = rest.get(f"lists/{wanted}")
        config = rest.get(f"lists/{wanted}/config")
    except NotFound:
        raise BadInput(f"Mailman has no list {list_id!r} (try `mailman lists`)") from None
    address = str(found.get("fqdn_listname") or config.get("fqdn_listname") or "")
    plan = ListPlan(source=f"Mailman 3 {rest.url} {address}", address=address)
    _settings(plan, config)
    _people(plan, rest, wanted)
    _rules(plan, rest, wanted)
    if archive is not None:
        mbox.attach(plan, archive)
    return plan


def _settings(plan: ListPlan, config: dict[str, Any]) -> None:
    def text(key: str) -> str:
        value = config.get(key)
        return "" if value is None else str(value).strip()

    if text("display_name"):
        plan.keep("name", text("display_name"), "display_name")
    if text("description"):
        plan.keep("description", text("description"), "description")
    prefix = without_post_number(plan, text("subject_prefix"), text("display_name"))
    plan.keep("subject_prefix", prefix, "subject_prefix")
    size = _int(config.get("max_message_size"))
    plan.keep("max_message_size", f"{size}K" if size else "100M", "max_message_size (KB)")
    if size:
        plan.leave(f"max_message_size {size} KB", "Mailman held bigger posts for a moderator; "
                   "maillist refuses them when they arrive (the archive keeps every size)")  # fmt: skip
    else:
        plan.leave("max_message_size 0 (no limit)", "maillist always has one: 100M at most")
    reply = text("reply_goes_to_list")
    plan.keep("reply_to", {"point_to_list": "list"}.get(reply, "author") if not
              reply.startswith("explicit") else text("reply_to_address"), "reply_goes_to_list")  # fmt: skip
    if reply == "explicit_header_only":
        plan.leave("reply_goes_to_list explicit_header_only", "maillist adds Reply-To beside the "
                   "author's own")  # fmt: skip
    policy = text("subscription_policy")
    plan.keep(
        "subscription", "approve" if "moderate" in policy else "confirm", "subscription_policy"
    )
    if policy == "open":
        plan.leave("subscription_policy open", "maillist always confirms a join")
    archive = {"public": "public", "private": "private", "never": "none"}.get(
        text("archive_policy")
    )
    if archive:
        plan.keep("archive", archive, "archive_policy")
    member, nonmember = text("default_member_action"), text("default_nonmember_action")
    if member in {"hold", "reject", "discard"}:
        plan.keep("posting", "moderated", f"default_member_action {member}")
        if member != "hold":
            plan.leave(f"default_member_action {member}", "maillist holds members' posts on a "
                       "moderated list for a moderator")  # fmt: skip
    elif nonmember in {"accept", "defer"}:
        plan.keep("posting", "open", f"default_nonmember_action {nonmember}")
    else:
        plan.keep("posting", "members", f"default_nonmember_action {nonmember or 'hold'}")
        if nonmember in {"reject", "discard"}:
            plan.leave(f"default_nonmember_action {nonmember}", "maillist holds non-members' "
                       "posts for a moderator")  # fmt: skip
    plan.keep(
        "personalize", "yes" if text("personalize") not in {"", "none"} else "no", "personalize"
    )
    _dmarc(plan, text("dmarc_mitigate_action"), config.get("dmarc_mitigate_unconditionally"))
    threshold = _int(config.get("bounce_score_threshold"))
    if threshold:
        plan.keep("bounce_threshold", str(min(100, max(1, threshold))), "bounce_score_threshold")
    stale = _STALE.match(text("bounce_info_stale_after"))
    if stale:
        seconds = int(stale.group(1)) * 86400 + float(stale.group(2) or 0)
        days = min(30, max(1, int(-(-seconds // 86400))))
        plan.keep("bounce_stale_days", str(days), "bounce_info_stale_after")
    warnings = config.get("bounce_you_are_disabled_warnings")
    if isinstance(warnings, int):
        plan.keep("bounce_warnings", str(min(10, max(0, warnings))),
                  "bounce_you_are_disabled_warnings")  # fmt: skip
    for key in NONMEMBER_RULES:
        listed = config.get(key)
        entries = [str(e) for e in listed] if isinstance(listed, list) else []
        if entries:
            plan.leave(f"{key} ({_some(entries)})", "maillist has no per-address posting rules: "
                       "non-members' posts are held for a moderator")  # fmt: skip
    other = sorted(k for k in config if k not in READ and k not in STATE)
    if other:
        plan.leave(
            f"{len(other)} other settings ({', '.join(other)})", "maillist has no meaning for them"
        )


def _dmarc(plan: ListPlan, action: str, unconditionally: object) -> None:
    """Mailman munges or wraps only the posts of domains with a strict DMARC policy unless told to
    do it to every post; maillist's `auto` is the former, `munge` and `wrap` the latter."""
    if not action:
        return
    if action in {"munge_from", "wrap_message"} and unconditionally is True:
        plan.keep("dmarc", "munge" if action == "munge_from" else "wrap",
                  "dmarc_mitigate_action, unconditionally")  # fmt: skip
    elif action == "no_mitigation":
        plan.keep("dmarc", "none", "dmarc_mitigate_action")
    else:
        plan.keep("dmarc", "auto", f"dmarc_mitigate_action {action}")
        if action != "munge_from":
            plan.leave(f"dmarc_mitigate_action {action}", "maillist munges From for strict-DMARC "
                       "domains (dmarc auto); it does not wrap, reject or discard them")  # fmt: skip


def _people(plan: ListPlan, rest: Rest, list_id: str) -> None:
    members = list(rest.entries(f"lists/{list_id}/roster/member"))
    pool = ThreadPoolExecutor(READERS)
    try:
        preferences = list(pool.map(lambda m: _preferences(rest, m), members))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # an error waits for 4 requests, not all
    receiving = {str(m.get("email", "")).lower() for m in members}
    for member, prefs in zip(members, preferences, strict=True):
        email = str(member.get("email") or "")
        status = str(prefs.get("delivery_status") or "enabled")
        mode = MODES.get(str(member.get("delivery_mode") or "regular"), Mode.REGULAR)
        disabled = {"by_bounces": "bounces", "by_moderator": "admin"}.get(status, "")
        if status not in {"enabled", "by_bounces", "by_moderator"}:
            mode = Mode.NOMAIL  # by_user, and Mailman's "unknown" (2.1's legacy disabled)
        plan.people.append(
            Subscriber(
                email,
                f"member {email}",
                name=str(member.get("display_name") or ""),
                mode=mode,
                disabled=disabled,
                receive_own=prefs.get("receive_own_postings") is not False,
            )
        )
        action = str(member.get("moderation_action") or "")
        if action and action != "defer":
            plan.leave(f"moderation_action {action} for member {email}", "maillist has no "
                       "per-member moderation")  # fmt: skip
    for role, name in ((Role.OWNER, "owner"), (Role.MODERATOR, "moderator")):
        for entry in rest.entries(f"lists/{list_id}/roster/{name}"):
            email = str(entry.get("email") or "")
            plan.people.append(
                Subscriber(
                    email,
                    f"{name} {email}",
                    name=str(entry.get("display_name") or ""),
                    role=role,
                    receives=email.lower() in receiving,
                )
            )


def _preferences(rest: Rest, member: dict[str, Any]) -> dict[str, Any]:
    member_id = member.get("member_id")
    if not member_id:
        return {}
    try:
        return rest.get(f"members/{member_id}/all/preferences")  # effective, not only set ones
    except NotFound:  # unsubscribed since the roster was read
        return {}


def _rules(plan: ListPlan, rest: Rest, list_id: str) -> None:
    for entry in _optional(rest, f"lists/{list_id}/roster/nonmember"):
        action = str(entry.get("moderation_action") or "")
        if action and action != "defer":
            plan.leave(f"nonmember {entry.get('email')} moderation_action {action}",
                       "maillist has no per-address posting rules: non-members' posts are held")  # fmt: skip
    for entry in _optional(rest, f"lists/{list_id}/uris"):
        plan.leave(f"{entry.get('name')} {entry.get('uri')}", "maillist's notices and footer "
                   "come from its templates")  # fmt: skip
    for entry in _optional(rest, f"lists/{list_id}/held"):
        text, reason = entry.get("msg"), str(entry.get("reason") or "held")
        where = f"held {entry.get('request_id')}"
        if isinstance(text, str) and text:
            raw = mbox.crlf(text.encode("utf-8", "surrogateescape"))
            plan.held.append(HeldPost(where, raw, f"held in Mailman 3: {reason[:200]}"))
        else:
            plan.leave(f"{where} ({entry.get('sender')})", "Mailman did not give its text: "
                       "decide it in Mailman")  # fmt: skip
    for name, why in (("bans", "maillist has no bans: remove or refuse the address by hand"),
                      ("requests", "pending joins stay in Mailman: decide them there first")):  # fmt: skip
        found = _optional(rest, f"lists/{list_id}/{name}")
        if found:
            shown = _some([str(e.get("email") or e.get("sender") or "?") for e in found])
            plan.leave(f"{len(found)} {name} ({shown})", why)


def _optional(rest: Rest, path: str) -> list[dict[str, Any]]:
    """A collection an older Mailman core may not have (404: nothing to name)."""
    try:
        return list(rest.entries(path))
    except NotFound:
        return []


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _some(entries: list[str]) -> str:
    more = f" and {len(entries) - 5} more" if len(entries) > 5 else ""
    return ", ".join(entries[:5]) + more
