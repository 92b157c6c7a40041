"""An mbox file read one message at a time (Mailman 2's pipermail mbox, mlmmj exports, Google
Takeout): memory stays within one message, however large the file or any message in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from maillist.errors import BadInput
from maillist.sources.plan import Archived

LINE = 64 * 1024  # read at most this much at a time: a file of one huge line costs no more


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def messages(path: Path, cap: int) -> Iterator[Archived]:
    """Each message of an mbox (mboxo or mboxrd, split where a line starts with `From `, as
    Python's mailbox and mutt split), streamed; one over `cap` bytes comes with `raw` None. A file
    whose first line is not a `From ` line is no mbox (BadInput), not an empty one."""
    if not path.is_file():
        raise BadInput(f"no mbox file at {path}")
    with path.open("rb") as source:
        first = source.readline(LINE)
        if not first:
            return
        if not first.startswith(b"From "):
            raise BadInput(f"{path} is not an mbox file: its first line is not a 'From ' line")
        position, kept, size, line_start = 1, bytearray(), 0, True
        while True:
            chunk = source.readline(LINE)
            if not chunk or (line_start and chunk.startswith(b"From ")):
                if kept.endswith(b"\n\n"):  # the blank line before the separator
                    del kept[-1:]
                raw = crlf(bytes(kept)) if size <= cap else None
                yield Archived(f"message {position}", raw, size)
                if not chunk:
                    return
                position, kept, size = position + 1, bytearray(), 0
                line_start = chunk.endswith(b"\n")
                continue
            size += len(chunk)
            if size <= cap:
                kept += chunk
            elif kept:
                kept = bytearray()  # over the cap: the rest is only counted
            line_start = chunk.endswith(b"\n")
