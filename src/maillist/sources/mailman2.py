"""A Mailman 2.1 list from its `lists/LIST/config.pck` (read as data by `pickle2`, never run),
and its history from `archives/private/LIST.mbox/LIST.mbox`. The settings with a maillist
meaning are carried over; every other one is named in `left_behind`."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from maillist.errors import BadInput
from maillist.models import Mode, Role
from maillist.sources import mbox, pickle2
from maillist.sources.plan import ListPlan, Subscriber

_NUMBER = re.compile(r"\s*%(\([a-z_]+\))?[-#0 +]*\d*[di]")  # the post number in a prefix
# Mailman/Defaults.py and MemberAdaptor.py
DISABLE_DELIVERY, DONT_RECEIVE_OWN, MODERATE = 1, 2, 128
BY_USER, BY_ADMIN, BY_BOUNCE, UNKNOWN = 2, 3, 4, 1
CHARSETS = {
    "en": "us-ascii", "de": "iso-8859-1", "fr": "iso-8859-1", "es": "iso-8859-1",
    "it": "iso-8859-1", "nl": "iso-8859-1", "pt": "iso-8859-1", "pt_BR": "iso-8859-1",
    "da": "iso-8859-1", "sv": "iso-8859-1", "no": "iso-8859-1", "fi": "iso-8859-1",
    "pl": "iso-8859-2", "cs": "iso-8859-2", "hu": "iso-8859-2", "ru": "koi8-r", "el": "iso-8859-7",
    "ja": "euc-jp", "ko": "euc-kr", "zh_CN": "gb2312", "zh_TW": "big5",
}  # fmt: skip
READ = {
    "real_name", "host_name", "description", "subject_prefix", "members", "digest_members",
    "user_options", "usernames", "delivery_status", "owner", "moderator", "max_message_size",
    "reply_goes_to_list", "reply_to_address", "msg_footer", "archive", "archive_private",
    "subscribe_policy", "generic_nonmember_action", "accept_these_nonmembers",
    "hold_these_nonmembers", "reject_these_nonmembers", "discard_these_nonmembers", "ban_list",
    "default_member_moderation", "personalize", "bounce_score_threshold",
    "bounce_info_stale_after", "bounce_you_are_disabled_warnings", "preferred_language",
}  # fmt: skip
STATE = {
    "passwords", "password", "mod_password", "post_password", "bounce_info", "pending",
    "data_version", "last_post_time", "post_id", "created_at", "one_last_digest",
    "digest_volume_frequency", "volume", "next_digest_number", "digest_last_sent_at",
    "hold_and_cmd_autoresponses", "language", "topics_userinterest", "new_member_options",
    "last_moderation_date", "bounce_matching_headers",
}  # fmt: skip


def read(config_pck: Path, archive: Path | None = None) -> ListPlan:
    data = pickle2.load(config_pck)
    if not isinstance(data, dict) or "members" not in data or "host_name" not in data:
        raise BadInput(f"{config_pck} is not a Mailman 2.1 config.pck (no members or host_name)")
    charset = CHARSETS.get(str(data.get("preferred_language", "en")), "utf-8")

    def text(key: str) -> str:
        return pickle2.recode(data.get(key, ""), charset).strip()

    internal = config_pck.parent.name if config_pck.parent.name not in {"", "."} else ""
    local = (internal or text("real_name")).lower()
    plan = ListPlan(source=f"Mailman 2.1 {config_pck}", address=f"{local}@{text('host_name')}")
    _settings(plan, data, text)
    _people(plan, data, charset)
    if archive is not None:
        if not archive.is_file():
            raise BadInput(f"no mbox file at {archive}")
        plan.archive_size = archive.stat().st_size
        plan.archive = lambda cap: mbox.messages(archive, cap)
    return plan


def _settings(plan: ListPlan, data: dict[str, Any], text: Any) -> None:
    if text("real_name"):
        plan.keep("name", text("real_name"), "real_name")
    if text("description"):
        plan.keep("description", text("description")[:500], "description")
    prefix = text("subject_prefix")
    if "%" in prefix:
        plan.leave(f"subject_prefix {prefix!r}", "maillist's prefix has no post number")
        prefix = prefix.replace("%(real_name)s", text("real_name"))
        prefix = " ".join(_NUMBER.sub("", prefix).split())
    plan.keep("subject_prefix", prefix, "subject_prefix")
    size = int(data.get("max_message_size") or 0)
    if size:
        plan.keep("max_message_size", f"{size}K", "max_message_size (KB)")
    else:
        plan.leave("max_message_size 0 (no limit)", "maillist always has one: 100M at most")
        plan.keep("max_message_size", "100M", "max_message_size 0")
    reply = int(data.get("reply_goes_to_list") or 0)
    target = {0: "author", 1: "list", 2: text("reply_to_address")}.get(reply, "author")
    plan.keep("reply_to", target or "author", "reply_goes_to_list")
    plan.keep("footer", "yes" if text("msg_footer") else "no", "msg_footer")
    if text("msg_footer"):
        plan.leave("msg_footer text", "maillist's footer is its template (templates/footer.txt)")
    if not data.get("archive", 1):
        plan.keep("archive", "none", "archive")
    else:
        private = data.get("archive_private", 0)
        plan.keep("archive", "private" if private else "public", "archive_private")
    policy = int(data.get("subscribe_policy") or 0)
    plan.keep("subscription", "approve" if policy >= 2 else "confirm", "subscribe_policy")
    if policy == 0:
        plan.leave("subscribe_policy 0 (no confirmation)", "maillist always confirms a join")
    plan.keep("personalize", "yes" if data.get("personalize") else "no", "personalize")
    _posting(plan, data)
    _bounces(plan, data)
    for key in ("accept_these_nonmembers", "hold_these_nonmembers", "reject_these_nonmembers",
                "discard_these_nonmembers", "ban_list"):  # fmt: skip
        entries = [str(e) for e in data.get(key) or []]
        if entries:
            shown = ", ".join(entries[:5]) + (
                f" and {len(entries) - 5} more" if len(entries) > 5 else ""
            )
            plan.leave(f"{key} ({shown})", "maillist has no per-address posting rules or bans: "
                       "posts from non-members are held for a moderator")  # fmt: skip
    state = sorted(k for k in data if k in STATE)
    other = sorted(k for k in data if k not in READ and k not in STATE)
    if other:
        plan.leave(
            f"{len(other)} other settings ({', '.join(other)})", "maillist has no meaning for them"
        )
    if state:
        plan.leave(f"Mailman's own state ({', '.join(state)})", "not settings; passwords are "
                   "never carried (maillist signs members in by email)")  # fmt: skip


def _posting(plan: ListPlan, data: dict[str, Any]) -> None:
    options: dict[str, int] = data.get("user_options") or {}
    moderated = sum(1 for flags in options.values() if int(flags or 0) & MODERATE)
    action = int(data.get("generic_nonmember_action") or 0)
    members = len(data.get("members") or {}) + len(data.get("digest_members") or {})
    if members and moderated >= members:
        plan.keep("posting", "moderated", "every member's Moderate flag")
    elif action == 0:
        plan.keep("posting", "open", "generic_nonmember_action 0 (accept)")
    else:
        plan.keep("posting", "members", f"generic_nonmember_action {action}")
        if action in (2, 3):
            verb = "rejected" if action == 2 else "discarded"
            plan.leave(f"generic_nonmember_action {action}", f"Mailman {verb} non-members' "
                       "posts; maillist holds them for a moderator")  # fmt: skip
    if 0 < moderated < members:
        plan.leave(f"Moderate flag on {moderated} member(s)", "maillist has no per-member "
                   "moderation: their posts go out as any member's")  # fmt: skip


def _bounces(plan: ListPlan, data: dict[str, Any]) -> None:
    threshold = data.get("bounce_score_threshold")
    if threshold is not None:
        plan.keep("bounce_threshold", str(max(1.0, float(threshold))), "bounce_score_threshold")
    stale = data.get("bounce_info_stale_after")
    if stale:
        days = min(30, max(1, math.ceil(float(stale) / 86400)))
        plan.keep("bounce_stale_days", str(days), "bounce_info_stale_after")
    warnings = data.get("bounce_you_are_disabled_warnings")
    if warnings is not None:
        plan.keep(
            "bounce_warnings", str(min(10, int(warnings))), "bounce_you_are_disabled_warnings"
        )


def _people(plan: ListPlan, data: dict[str, Any], charset: str) -> None:
    options: dict[str, int] = data.get("user_options") or {}
    names: dict[str, Any] = data.get("usernames") or {}
    status: dict[str, Any] = data.get("delivery_status") or {}
    subscribed: set[str] = set()
    for key, mode in (("members", Mode.REGULAR), ("digest_members", Mode.DIGEST)):
        for lower, cased in sorted((data.get(key) or {}).items()):
            address = cased if isinstance(cased, str) and cased else lower
            flags = int(options.get(lower) or 0)
            why = status.get(lower, (0, 0))
            reason = int(why[0]) if isinstance(why, tuple | list) and why else 0
            disabled = ""
            chosen = mode
            if flags & DISABLE_DELIVERY or reason:
                if reason in (BY_ADMIN,):
                    disabled = "admin"
                elif reason == BY_BOUNCE:
                    disabled = "bounces"
                else:
                    chosen = Mode.NOMAIL  # by the member (or, in old lists, unknown)
            plan.people.append(
                Subscriber(
                    address,
                    f"{key} {lower}",
                    name=pickle2.recode(names.get(lower, ""), charset),
                    mode=chosen,
                    disabled=disabled,
                    receive_own=not flags & DONT_RECEIVE_OWN,
                )
            )
            subscribed.add(str(lower).lower())
    for key, role in (("owner", Role.OWNER), ("moderator", Role.MODERATOR)):
        for address in data.get(key) or []:
            plan.people.append(
                Subscriber(
                    str(address), key, role=role, receives=str(address).lower() in subscribed
                )
            )
