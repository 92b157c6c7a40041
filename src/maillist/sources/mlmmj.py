"""An mlmmj list directory (`mlmmj-make-ml` makes one): `control/` tunables, the subscriber files
and the archive, read into a ListPlan. Every control file present is either carried over or named
in `left_behind`; mlmmj keeps no display names."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from maillist.errors import BadInput
from maillist.models import Mode, Role
from maillist.sources.mbox import crlf
from maillist.sources.plan import Archived, HeldPost, ListPlan, Subscriber

LINE = 4096  # the longest line kept of a control or subscriber file
HELD_CAP = 100 * 1024 * 1024  # maillist's own largest message
_COOKIE = re.compile(r"^[0-9a-f]{8,64}$")  # mlmmj names a held post by a random hex cookie

MODES = (
    ("subscribers.d", Mode.REGULAR),
    ("digesters.d", Mode.DIGEST),
    ("nomailsubs.d", Mode.NOMAIL),
)

# Tunables maillist reads (below, in `_settings`), and why the others cannot be carried over.
CARRIED = {
    "listaddress", "owner", "moderators", "prefix", "moderated", "modonlypost", "subonlypost",
    "modnonsubposts", "closedlist", "closedlistsub", "submod", "maxmailsize", "maxverprecips",
    "noarchive", "footer", "customheaders",
}  # fmt: skip
WHY = {
    "tocc": "maillist takes a post whatever its To and Cc say (mlmmj's tocc behaviour always)",
    "delheaders": "maillist removes the headers it must (DKIM-breaking, Return-Path, list "
    "headers) and keeps the rest; a per-list removal list has no meaning here",
    "access": "maillist has no header-matching access rules; posting is members, open or moderated",
    "relayhost": "the relay is a site setting: maillist serve --relay HOST:PORT",
    "smtpport": "the relay is a site setting: maillist serve --relay HOST:PORT",
    "verp": "maillist always uses its own VERP bounce addresses for personalised copies",
    "nosubconfirm": "maillist always confirms a join by email (add members with `members add`)",
    "bouncelife": "maillist scores bounces instead (bounce_threshold, bounce_stale_days)",
    "digestinterval": "maillist sends digests daily at digest_hour or when digest_size is reached",
    "digestmaxmails": "maillist sends digests daily at digest_hour or when digest_size is reached",
    "modreqlife": "held posts stay until a moderator decides",
    "addtohdr": "copies keep the post's own To",
    "delimiter": "maillist's sub-addresses always use '+' and '-'",
    "memorymailsize": "an mlmmj implementation detail",
    "staticbounceaddr": "maillist handles its own bounces at LIST-bounces@",
    "listtext": "notices come from maillist's own templates",
    "notmetoo": "carried as receive_own = no for each member imported; maillist has no list-wide "
    "setting, so members who join later get their own posts",
}


def read(listdir: Path) -> ListPlan:
    """The plan for the list in `listdir`; BadInput when it is not an mlmmj list directory or
    cannot be read (mlmmj's spool belongs to its own user: run as that user, or root)."""
    try:
        return _read(listdir)
    except OSError as exc:
        raise BadInput(f"cannot read {exc.filename or listdir}: {exc.strerror}") from None


def _read(listdir: Path) -> ListPlan:
    control = listdir / "control"
    if not (control / "listaddress").is_file():
        raise BadInput(f"{listdir} is not an mlmmj list directory: no control/listaddress")
    addresses = _lines(control / "listaddress")
    if not addresses:
        raise BadInput(f"{control / 'listaddress'} is empty")
    plan = ListPlan(source=f"mlmmj {listdir}", address=addresses[0])
    for alias in addresses[1:]:
        plan.leave(f"control/listaddress {alias}", "maillist lists have one address each")
    _settings(plan, control)
    _people(plan, listdir, receive_own=not (control / "notmetoo").exists())
    _held(plan, listdir / "moderation")
    archive = listdir / "archive"
    files = _archive_files(archive)
    if files:
        plan.archive_size = sum(path.stat().st_size for _, path in files)
        plan.archive = lambda cap: _archived(files, cap)
    return plan


def _settings(plan: ListPlan, control: Path) -> None:
    present = {p.name for p in control.iterdir()} if control.is_dir() else set()

    def on(name: str) -> bool:
        return name in present

    def first(name: str) -> str:
        lines = _lines(control / name) if on(name) else []
        return lines[0] if lines else ""

    plan.keep("subject_prefix", first("prefix"), "control/prefix" if on("prefix") else
              "no control/prefix")  # fmt: skip
    if on("moderated") or on("modonlypost"):
        plan.keep("posting", "moderated", "control/moderated" if on("moderated") else
                  "control/modonlypost")  # fmt: skip
        if on("modonlypost"):
            plan.leave("control/modonlypost", "maillist holds every post of a moderated list "
                       "for a moderator, moderators' own posts included")  # fmt: skip
    elif on("subonlypost"):
        plan.keep("posting", "members", "control/subonlypost")
        if not on("modnonsubposts"):
            plan.leave("control/subonlypost without modnonsubposts", "mlmmj refused "
                       "non-subscribers' posts; maillist holds them for a moderator")  # fmt: skip
    else:
        plan.keep("posting", "open", "no control/subonlypost or moderated")
    if on("closedlist") or on("closedlistsub"):
        plan.keep("subscription", "closed", "control/closedlist" if on("closedlist") else
                  "control/closedlistsub")  # fmt: skip
    elif on("submod"):
        plan.keep("subscription", "approve", "control/submod")
        if _lines(control / "submod"):
            plan.leave("control/submod addresses", "maillist asks the list's moderators")
    if on("maxmailsize") and first("maxmailsize"):
        plan.keep("max_message_size", first("maxmailsize"), "control/maxmailsize")
    if on("maxverprecips") and first("maxverprecips"):
        plan.keep("batch_size", first("maxverprecips"), "control/maxverprecips")
    if on("noarchive"):
        plan.keep("archive", "none", "control/noarchive")
    plan.keep("footer", "yes" if on("footer") else "no", "control/footer" if on("footer") else
              "no control/footer")  # fmt: skip
    if on("footer"):
        plan.leave("control/footer text", "maillist's footer is its template "
                   "(templates/footer.txt): it names the author, their badges and how to leave")  # fmt: skip
    for header in _lines(control / "customheaders") if on("customheaders") else []:
        name, _, value = header.partition(":")
        if name.strip().lower() == "reply-to" and value.strip():
            target = value.strip().strip("<>")
            listed = target.lower() == plan.address.lower()
            plan.keep("reply_to", "list" if listed else target, "control/customheaders Reply-To")
        else:
            plan.leave(f"control/customheaders {header[:80]}", "maillist adds only its own headers")
    for name in sorted(present - CARRIED):
        plan.leave(f"control/{name}", WHY.get(name, "maillist has no meaning for it"))
    if (control.parent / "text").is_dir():
        plan.leave("text/", WHY["listtext"])
    for folder, what in (("subconf", "joins waiting for confirmation"),
                         ("unsubconf", "leaves waiting for confirmation")):  # fmt: skip
        waiting = control.parent / folder
        count = sum(1 for p in waiting.iterdir() if p.is_file()) if waiting.is_dir() else 0
        if count:
            plan.leave(f"{folder}/ ({count} {what})", "decide or finish them in mlmmj before "
                       "moving: maillist does not read mlmmj's queues")  # fmt: skip


def _people(plan: ListPlan, listdir: Path, receive_own: bool) -> None:
    seen: set[str] = set()
    for folder, mode in MODES:
        directory = listdir / folder
        for path in sorted(directory.iterdir()) if directory.is_dir() else []:
            for number, line in _numbered(path):
                where = f"{folder}/{path.name} line {number}"
                plan.people.append(Subscriber(line, where, mode=mode, receive_own=receive_own))
                seen.add(line.lower())
    for role, name in ((Role.OWNER, "owner"), (Role.MODERATOR, "moderators")):
        path = listdir / "control" / name
        for number, line in _numbered(path) if path.is_file() else []:
            plan.people.append(
                Subscriber(
                    line, f"control/{name} line {number}", role=role, receives=line.lower() in seen
                )
            )


def _held(plan: ListPlan, moderation: Path) -> None:
    """Posts waiting for the list's moderators: `moderation/<cookie>`, the post as received."""
    if not moderation.is_dir():
        return
    other = 0
    for path in sorted(moderation.iterdir()):
        if (_COOKIE.match(path.name) and not path.is_symlink() and path.is_file()
                and path.stat().st_size <= HELD_CAP):  # fmt: skip
            raw = crlf(path.read_bytes())
            plan.held.append(HeldPost(f"moderation/{path.name}", raw, "held in mlmmj for its "
                                      "moderators"))  # fmt: skip
        else:
            other += 1
    if other:
        plan.leave(f"moderation/ ({other} other file(s))", "not posts mlmmj holds for its "
                   "moderators: left in mlmmj")  # fmt: skip


def _archive_files(archive: Path) -> list[tuple[int, Path]]:
    if not archive.is_dir():
        return []
    found = [
        (int(p.name), p) for p in archive.iterdir()
        if p.name.isascii() and p.name.isdecimal() and not p.is_symlink() and p.is_file()
    ]  # fmt: skip
    return sorted(found)


def _archived(files: list[tuple[int, Path]], cap: int) -> Iterator[Archived]:
    for number, path in files:
        try:
            size = path.stat().st_size
            raw = crlf(path.read_bytes()) if size <= cap else None
        except OSError as exc:  # gone or unreadable since it was listed: the import stops
            raise BadInput(f"cannot read {path}: {exc.strerror}") from None
        yield Archived(f"archive/{number}", raw, size)


def _numbered(path: Path) -> Iterator[tuple[int, str]]:
    """Each non-blank line with its number, read a line at a time: a subscriber file of any
    size is read whole; a line no address could fill is cut (and then reported as a bad
    address)."""
    try:
        with path.open("rb") as handle:
            number = 0
            while line := handle.readline(LINE):
                number += 1
                text = line.decode("utf-8", errors="replace").strip()
                if text:
                    yield number, text
                rest = line
                while rest and not rest.endswith(b"\n"):  # the rest of an over-long line
                    rest = handle.readline(LINE)
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None


def _lines(path: Path) -> list[str]:
    return [line for _, line in _numbered(path)]
