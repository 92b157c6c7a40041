"""An mbox file read one message at a time (Mailman 2's pipermail mbox, mlmmj exports, Google
Takeout): memory stays within one message, however large the file or any message in it."""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from maillist.errors import BadInput
from maillist.sources.plan import Archived, ListPlan

LINE = 64 * 1024  # read at most this much at a time: a file of one huge line costs no more


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def messages(path: Path, cap: int) -> Iterator[Archived]:
    """Each message of an mbox (mboxo or mboxrd, split where a line starts with `From `, as
    Python's mailbox and mutt split), streamed; one over `cap` bytes comes with `raw` None. A file
    whose first line is not a `From ` line is no mbox (BadInput), not an empty one."""
    try:
        if not path.is_file():
            raise BadInput(f"no mbox file at {path}")
        with _open(path) as source:
            yield from _split(path, source, cap)
    except (OSError, EOFError, zlib.error) as exc:  # unreadable, or a broken gzip stream
        raise BadInput(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def attach(plan: ListPlan, path: Path) -> None:
    """The mbox at `path` (gzipped or not) as the plan's history."""
    try:
        if not path.is_file():
            raise BadInput(f"no mbox file at {path}")
        plan.archive_size = size(path)
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None
    plan.archive = lambda cap: messages(path, cap)


def size(path: Path) -> int:
    """The mbox's size in bytes, uncompressed (a gzip file's trailer says, modulo 4 GiB)."""
    total = path.stat().st_size
    if _gzipped(path) and total >= 18:
        with path.open("rb") as handle:
            handle.seek(-4, 2)
            return int(struct.unpack("<I", handle.read(4))[0])
    return total


def _gzipped(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _open(path: Path) -> BinaryIO:
    """The file, or what it holds when it is gzipped (HyperKitty exports `LIST.mbox.gz`)."""
    if _gzipped(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _split(path: Path, source: BinaryIO, cap: int) -> Iterator[Archived]:
    first = source.readline(LINE)
    if not first:
        return
    if not first.startswith(b"From "):
        raise BadInput(f"{path} is not an mbox file: its first line is not a 'From ' line")
    position, kept, length, line_start = 1, bytearray(), 0, True
    while True:
        chunk = source.readline(LINE)
        if not chunk or (line_start and chunk.startswith(b"From ")):
            if kept.endswith(b"\n\n"):  # the blank line before the separator
                del kept[-1:]
            raw = crlf(bytes(kept)) if length <= cap else None
            yield Archived(f"message {position}", raw, length)
            if not chunk:
                return
            position, kept, length = position + 1, bytearray(), 0
            line_start = chunk.endswith(b"\n")
            continue
        length += len(chunk)
        if length <= cap:
            kept += chunk
        elif kept:
            kept = bytearray()  # over the cap: the rest is only counted
        line_start = chunk.endswith(b"\n")
