"""Reading one DATA section into one bounded buffer.

aiosmtpd 1.4.6 reads DATA a line at a time and keeps a bytearray per line until the end: 10 MB of
empty lines is five million objects (about 420 MB) per session and five million turns of a
Python loop on the event loop. This reader takes whatever has arrived, scans it with C-speed
bytes methods, and keeps one bytearray: memory is the message size (bounded by the list's
limit), time is per chunk, not per line. Measured over a socket, 10 MiB of empty lines: peak
memory grew by 851 MiB with aiosmtpd's reader, by 48 MiB with this one
(tests/test_smtp_hostile.py holds it under 120 MiB).

Its replies and its handling of dot-stuffing, the `<CRLF>.<CRLF>` terminator, oversize data and
overlong lines are those of aiosmtpd 1.4.6's own DATA, which no aiosmtpd document promises:
tests/test_smtp_data.py holds the two side by side, and tests/test_upstream_guard.py fails when
aiosmtpd's smtp_DATA changes (re-check this module against it then). The reader it is given is
aiosmtpd's private `_reader` (smtp/server.py says why)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

END = b"\r\n.\r\n"


class DataState(Enum):
    OK = "ok"
    TOO_MUCH = "too much"  # more than the size limit: 552 after the terminator
    TOO_LONG = "too long"  # a line longer than the line limit: 500 after the terminator


@dataclass(frozen=True, slots=True)
class Data:
    state: DataState
    content: bytes  # de-stuffed, without the terminator; empty unless state is OK


READ_ALL = 1 << 30  # StreamReader.read(n) returns what is buffered, up to n: everything


async def read_data(
    reader: asyncio.StreamReader,
    size_limit: int | None,
    line_limit: int,
    progress: Callable[[], None] = lambda: None,
) -> Data:
    """Read up to and including the terminator. `line_limit` counts a line with its CRLF (1001,
    as in aiosmtpd); `size_limit` counts the message as sent (stuffed dots included, terminator
    not). `progress` is called for every chunk, so a client sending steadily is not idle.

    Each read takes everything the reader holds; the terminator is searched in the last four
    bytes seen plus the new chunk, so it is found wherever the chunks split it. Bytes after it
    (a pipelining client's next command) go back to the reader with feed_data(): read() left
    its buffer empty and nothing runs between the two calls, so they go back in order."""
    # The stream is read as if a CRLF came before it: DATA starts at the start of a line, so an
    # empty message is just ".\r\n" and END can be searched for from the first byte.
    buffer = bytearray(b"\r\n")
    state = DataState.OK
    line_start = 2  # where the line being read begins in `buffer` (while the state is OK)
    while True:
        chunk = await reader.read(READ_ALL)
        if not chunk:
            raise asyncio.IncompleteReadError(bytes(buffer), None)
        progress()
        keep = len(buffer)
        at = (buffer[-(len(END) - 1) :] + chunk).find(END)
        if at >= 0:
            cut = at + len(END) - min(len(END) - 1, keep)  # END's end, as an offset in chunk
            leftover, chunk = chunk[cut:], chunk[:cut]
            if leftover:
                # StreamReader.feed_data is the protocol-facing side of asyncio's reader (public
                # name, not in asyncio's documentation): tests/test_upstream_guard.py checks it.
                reader.feed_data(leftover)
        buffer += chunk
        if state is DataState.OK:
            end = len(buffer) - 3 if at >= 0 else len(buffer)  # the final "." is not a line
            state, line_start = _check_lines(buffer, line_start, end, size_limit, line_limit)
            if state is not DataState.OK:
                del buffer[: -(len(END) - 1)]  # keep only what the terminator search needs
        elif at < 0:
            del buffer[: -(len(END) - 1)]
        if at >= 0:
            break
    if state is not DataState.OK:
        return Data(state, b"")
    stuffed = bytes(buffer[: -len(END) + 2])  # "\r\n" + message as sent, its last CRLF kept
    if size_limit and len(stuffed) - 2 > size_limit:
        return Data(DataState.TOO_MUCH, b"")
    return Data(DataState.OK, stuffed.replace(b"\r\n.", b"\r\n")[2:])


def _check_lines(
    buffer: bytearray, start: int, end: int, size_limit: int | None, line_limit: int
) -> tuple[DataState, int]:
    """Check the lines completed in buffer[start:end] the way aiosmtpd does, one CRLF line at a
    time: a line's size counts first (the data grows past the limit: too much), then its
    length (over `line_limit` with its CRLF: too long); a line that cannot fit the reader's
    limit even before its CRLF arrives (1002 octets or more) is too long before its size
    counts. Returns the state and where the unfinished line now begins."""
    region = bytes(buffer[start:end])
    lines = region.split(b"\r\n")
    tail = lines.pop()  # the unfinished line (empty if the region ends with CRLF)
    longest = max(map(len, lines), default=0)
    done = start + len(region) - len(tail)  # where the unfinished line begins
    size = done - 2  # the data as sent so far, in complete lines
    if longest + 2 <= line_limit and not (size_limit and size > size_limit):
        if len(tail) >= line_limit + 1:  # will overrun the reader before its CRLF: too long
            return DataState.TOO_LONG, done
        return DataState.OK, done
    offset = start - 2
    for line in lines:  # something is wrong: find which comes first, as aiosmtpd would
        if len(line) >= line_limit + 1:
            return DataState.TOO_LONG, done
        offset += len(line) + 2
        if size_limit and offset > size_limit:
            return DataState.TOO_MUCH, done
        if len(line) + 2 > line_limit:
            return DataState.TOO_LONG, done
    return DataState.OK, done
