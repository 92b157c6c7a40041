"""What an import would create: one list's settings, people and history, as read from another
server, plus what cannot be carried over. Built by a reader in `sources/`, applied by
`services/importer.py`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from maillist.models import Mode, Role


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One person on the source list, as the source wrote them."""

    address: str
    where: str  # where the source says so, for reports: "subscribers.d/a line 3"
    name: str = ""
    role: Role = Role.MEMBER
    mode: Mode = Mode.REGULAR
    receives: bool = True  # False: an owner or moderator who was not subscribed to the posts
    disabled: str = ""  # why delivery was disabled (bounces, the admin); "" when enabled
    receive_own: bool = True


@dataclass(frozen=True, slots=True)
class Setting:
    """One maillist list option and the source setting it comes from."""

    option: str  # a name in listoptions.OPTIONS
    value: str  # as `maillist lists set` takes it
    source: str  # "control/prefix", "subject_prefix"


@dataclass(frozen=True, slots=True)
class Archived:
    """One message of the source's archive: its raw bytes (CRLF), or None when over the cap."""

    where: str  # "archive/12", "message 7"
    raw: bytes | None
    size: int


@dataclass(frozen=True, slots=True)
class HeldPost:
    """A post the source server was holding for its moderators: held here too."""

    where: str  # "held 3"
    raw: bytes  # CRLF line endings
    reason: str  # why, as the moderation queue shows it: "held in Mailman 3: ..."


ArchiveReader = Callable[[int], Iterator[Archived]]
"""Called with the largest message to keep (the list's size cap); yields the archive in order."""


@dataclass(slots=True)
class ListPlan:
    source: str  # "mlmmj /var/spool/mlmmj/team"
    address: str
    settings: list[Setting] = field(default_factory=list)
    people: list[Subscriber] = field(default_factory=list)
    left_behind: list[str] = field(default_factory=list)  # "setting = value: why not carried"
    problems: list[str] = field(default_factory=list)  # what the reader could not read
    held: list[HeldPost] = field(default_factory=list)
    archive: ArchiveReader | None = None
    archive_size: int = 0  # bytes, for a progress bar

    def keep(self, option: str, value: str, source: str) -> None:
        self.settings.append(Setting(option, value, source))

    def leave(self, what: str, why: str) -> None:
        self.left_behind.append(f"{what}: {why}")


_NUMBER = re.compile(r"\s*%(\([a-z_]+\))?[-#0 +]*\d*[di]")  # Mailman's post number: %d, %05d


def without_post_number(plan: ListPlan, prefix: str, list_name: str) -> str:
    """A Mailman subject prefix as maillist can use it: its list-name placeholders filled in, its
    post number dropped (and named in the plan)."""
    if "%" not in prefix and "$" not in prefix:
        return prefix
    filled = prefix.replace("%(real_name)s", list_name).replace("$display_name", list_name)
    kept = " ".join(_NUMBER.sub("", filled).split())
    if kept != " ".join(filled.split()):
        plan.leave(f"subject_prefix {prefix!r}", "maillist's prefix has no post number")
    return kept
