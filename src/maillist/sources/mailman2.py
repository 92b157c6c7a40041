"""A Mailman 2.1 list from its `lists/LIST/config.pck` (read as data by `pickle2`, never run),
and its history from `archives/private/LIST.mbox/LIST.mbox`. The settings with a maillist
meaning are carried over; every other one is named in `left_behind`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from maillist.errors import BadInput
from maillist.models import Mode, Role
from maillist.sources import mailman2held, mbox, pickle2
from maillist.sources.plan import ListPlan, Subscriber, without_post_number

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
    "personalize", "bounce_score_threshold", "bounce_info_stale_after",
    "bounce_you_are_disabled_warnings",
}  # fmt: skip
STATE = {
    "passwords", "password", "mod_password", "post_password", "bounce_info", "pending",
    "data_version", "last_post_time", "post_id", "created_at", "one_last_digest", "volume",
    "next_digest_number", "digest_last_sent_at", "hold_and_cmd_autoresponses", "language",
    "topics_userinterest", "last_moderation_date",
}  # fmt: skip
NONMEMBER_RULES = (
    "accept_these_nonmembers", "hold_these_nonmembers", "reject_these_nonmembers",
    "discard_these_nonmembers", "ban_list",
)  # fmt: skip


def read(config_pck: Path, archive: Path | None = None, data_dir: Path | None = None) -> ListPlan:
    """The list of `config_pck`; its history from `archive`; the posts its request.pck holds,
    their texts in `data_dir` (Mailman's data directory, by default `lists/LIST/../../data`)."""
    raw = pickle2.load(config_pck)
    if not isinstance(raw, dict) or b"members" not in raw or b"host_name" not in raw:
        raise BadInput(f"{config_pck} is not a Mailman 2.1 config.pck (no members or host_name)")
    language = raw.get(b"preferred_language", b"en")
    charset = CHARSETS.get(language.decode("latin-1") if isinstance(language, bytes) else "", "")
    try:
        data = pickle2.texts(raw, charset or "utf-8")
        plan = _plan(config_pck, data)
    except (TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
        raise BadInput(f"{config_pck} holds a value Mailman 2.1 would not have written "
                       f"({type(exc).__name__}: {str(exc)[:80]})") from None  # fmt: skip
    if archive is not None:
        mbox.attach(plan, archive)
    request = config_pck.parent / "request.pck"
    if request.is_file():
        data_dir = data_dir or config_pck.absolute().parent.parent.parent / "data"
        mailman2held.read(plan, request, data_dir)
    return plan


def _plan(config_pck: Path, data: dict[Any, Any]) -> ListPlan:
    def text(key: str) -> str:
        value = data.get(key)
        return value.strip() if isinstance(value, str) else ""

    # Mailman 2.1 lets real_name differ from the list's internal name only in case
    local = text("real_name").lower() or config_pck.parent.name.lower()
    plan = ListPlan(source=f"Mailman 2.1 {config_pck}", address=f"{local}@{text('host_name')}")
    if config_pck.parent.name.lower() not in {local, "", "."}:
        plan.leave(f"the folder name {config_pck.parent.name!r}", f"the list's real_name says "
                   f"its address is {plan.address}")  # fmt: skip
    _settings(plan, data, text)
    _people(plan, data)
    return plan


def _settings(plan: ListPlan, data: dict[Any, Any], text: Any) -> None:
    if text("real_name"):
        plan.keep("name", text("real_name"), "real_name")
    if text("description"):
        plan.keep("description", text("description"), "description")
    plan.keep("subject_prefix", without_post_number(plan, text("subject_prefix"),
                                                    text("real_name")), "subject_prefix")  # fmt: skip
    size = _int(data.get("max_message_size"))
    if size:
        plan.keep("max_message_size", f"{size}K", "max_message_size (KB)")
        plan.leave(f"max_message_size {size} KB", "Mailman held bigger posts for a moderator; "
                   "maillist refuses them when they arrive (the archive keeps every size)")  # fmt: skip
    else:
        plan.leave("max_message_size 0 (no limit)", "maillist always has one: 100M at most")
        plan.keep("max_message_size", "100M", "max_message_size 0")
    reply = _int(data.get("reply_goes_to_list"))
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
    policy = _int(data.get("subscribe_policy"))
    plan.keep("subscription", "approve" if policy >= 2 else "confirm", "subscribe_policy")
    if policy == 0:
        plan.leave("subscribe_policy 0 (no confirmation)", "maillist always confirms a join")
    plan.keep("personalize", "yes" if data.get("personalize") else "no", "personalize")
    _posting(plan, data)
    _bounces(plan, data)
    for key in NONMEMBER_RULES:
        entries = [str(e) for e in _list(data.get(key))]
        if entries:
            plan.leave(f"{key} ({_some(entries)})", "maillist has no per-address posting rules or "
                       "bans: posts from non-members are held for a moderator")  # fmt: skip
    if "preferred_language" in data:
        plan.leave(f"preferred_language {text('preferred_language')}", "read for the charset of "
                   "names; maillist's notices come from its own templates")  # fmt: skip
    state = sorted(str(k) for k in data if k in STATE)
    other = sorted(str(k) for k in data if k not in READ and k not in STATE
                   and k != "preferred_language")  # fmt: skip
    if other:
        plan.leave(
            f"{len(other)} other settings ({', '.join(other)})", "maillist has no meaning for them"
        )
    if state:
        plan.leave(f"Mailman's own state ({', '.join(state)})", "not settings; passwords are "
                   "never carried (maillist signs members in by email)")  # fmt: skip


def _posting(plan: ListPlan, data: dict[Any, Any]) -> None:
    options = _dict(data.get("user_options"))
    moderated = sum(1 for flags in options.values() if _int(flags) & MODERATE)
    action = _int(data.get("generic_nonmember_action"))
    members = len(_dict(data.get("members"))) + len(_dict(data.get("digest_members")))
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


def _bounces(plan: ListPlan, data: dict[Any, Any]) -> None:
    threshold = _float(data.get("bounce_score_threshold"))
    if threshold is not None:
        plan.keep(
            "bounce_threshold", str(min(100.0, max(1.0, threshold))), "bounce_score_threshold"
        )
    stale = _float(data.get("bounce_info_stale_after"))
    if stale:
        days = min(30, max(1, math.ceil(stale / 86400)))
        plan.keep("bounce_stale_days", str(days), "bounce_info_stale_after")
    warnings = data.get("bounce_you_are_disabled_warnings")
    if warnings is not None:
        plan.keep("bounce_warnings", str(min(10, max(0, _int(warnings)))),
                  "bounce_you_are_disabled_warnings")  # fmt: skip


def _people(plan: ListPlan, data: dict[Any, Any]) -> None:
    options = _dict(data.get("user_options"))
    names = _dict(data.get("usernames"))
    status = _dict(data.get("delivery_status"))
    subscribed: set[str] = set()
    for key, mode in (("members", Mode.REGULAR), ("digest_members", Mode.DIGEST)):
        for lower, cased in sorted(_dict(data.get(key)).items(), key=lambda kv: str(kv[0])):
            address = cased if isinstance(cased, str) and cased else str(lower)
            flags = _int(options.get(lower))
            why = status.get(lower)
            reason = _int(why[0]) if isinstance(why, tuple | list) and why else 0
            disabled, chosen = "", mode
            if flags & DISABLE_DELIVERY or reason:
                if reason == BY_ADMIN:
                    disabled = "admin"
                elif reason == BY_BOUNCE:
                    disabled = "bounces"
                else:
                    chosen = Mode.NOMAIL  # by the member (or, in old lists, unknown)
            name = names.get(lower)
            plan.people.append(
                Subscriber(
                    address,
                    f"{key} {lower}",
                    name=name if isinstance(name, str) else "",
                    mode=chosen,
                    disabled=disabled,
                    receive_own=not flags & DONT_RECEIVE_OWN,
                )
            )
            subscribed.add(str(lower).lower())
    for key, role in (("owner", Role.OWNER), ("moderator", Role.MODERATOR)):
        for address in _list(data.get(key)):
            plan.people.append(
                Subscriber(
                    str(address), key, role=role, receives=str(address).lower() in subscribed
                )
            )


def _some(entries: list[str]) -> str:
    more = f" and {len(entries) - 5} more" if len(entries) > 5 else ""
    return ", ".join(e[:100] for e in entries[:5]) + more


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) and math.isfinite(value) else 0


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _dict(value: object) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []
