"""Mailman 2.1's request queue: `lists/LIST/request.pck` and the posts it holds in
`data/heldmsg-LIST-ID.pck` (a pickled `email.Message`, Mailman's default) or `.txt` (the post's
text, with HOLD_MESSAGES_AS_PICKLES off).

Held posts come over into maillist's moderation queue, with Mailman's reason. A pickled post is
read as data (`pickle2`) and written back out the way Python 2's email Generator flattened it:
its headers as parsed (folded lines kept), a blank line, then its payload; a multipart's parts
between its boundary lines, with its preamble and epilogue. Pending joins and leaves are named
and left in Mailman."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from maillist.errors import BadInput
from maillist.sources import mbox, pickle2
from maillist.sources.plan import HeldPost, ListPlan

# Mailman/Pending.py and ListAdmin.py: what each entry of request.pck is
IGN, HELDMSG, SUBSCRIPTION, UNSUBSCRIPTION = 0, 1, 2, 3
HELD_CAP = 100 * 1024 * 1024  # maillist's own largest message
MAX_DEPTH = 64  # MIME nesting; a pickle can also make a part hold itself
_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"]*)"|([^;\s]+))', re.IGNORECASE)


def read(plan: ListPlan, request_pck: Path, data_dir: Path) -> None:
    """Add the posts held in `request_pck` to `plan.held`; name everything else it holds."""
    queue = pickle2.load(request_pck)
    if not isinstance(queue, dict):
        plan.problems.append(f"{request_pck}: not Mailman 2.1's request queue: not read")
        return
    pending: list[str] = []
    for key in sorted(k for k in queue if isinstance(k, int)):
        entry = queue[key]
        if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], tuple)):
            plan.problems.append(f"{request_pck} request {key}: not an entry Mailman writes")
            continue
        op, data = entry
        if op == HELDMSG and len(data) >= 5:
            _held(plan, key, data, data_dir)
        elif op in {SUBSCRIPTION, UNSUBSCRIPTION} and data:
            what = "join" if op == SUBSCRIPTION else "leave"
            address = data[1] if op == SUBSCRIPTION and len(data) > 1 else data[0]
            pending.append(f"{what} {_text(address)}")
    if pending:
        shown = ", ".join(pending[:5]) + (
            f" and {len(pending) - 5} more" if len(pending) > 5 else ""
        )
        plan.leave(f"pending requests in {request_pck.name} ({shown})", "they wait for an "
                   "admin in Mailman: decide them there first")  # fmt: skip


def _held(plan: ListPlan, key: int, data: tuple[Any, ...], data_dir: Path) -> None:
    sender, reason, filename = _text(data[1]), _text(data[3]), _text(data[4])
    where = f"held {key} ({sender or 'no sender'})"
    if not filename or Path(filename).name != filename or not filename.startswith("heldmsg-"):
        plan.problems.append(f"{where}: {filename!r} is not a file name Mailman writes: not read")
        return
    path = data_dir / filename
    try:
        if path.is_symlink() or not path.is_file():
            plan.leave(f"{where}", f"its text {path} is not there: decide it in Mailman (or give "
                       "--data, Mailman's data directory)")  # fmt: skip
            return
        if path.stat().st_size > HELD_CAP:
            plan.leave(f"{where}", f"{path} is larger than maillist's largest message")
            return
        if path.suffix == ".pck":
            raw = flatten(pickle2.load(path))
        else:  # the Generator's text, its `From ` line first
            raw = path.read_bytes()
            if raw.startswith(b"From "):
                raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    except BadInput as exc:
        plan.problems.append(f"{where}: {exc}")
        return
    except OSError as exc:
        plan.problems.append(f"{where}: cannot read {path}: {exc.strerror}")
        return
    because = f"held in Mailman 2.1: {reason[:200]}" if reason else "held in Mailman 2.1"
    plan.held.append(HeldPost(f"{where}", mbox.crlf(raw), because))


def flatten(message: Any) -> bytes:
    """The bytes of a pickled Python 2 `email.Message` (an Opaque record), as Python 2's
    Generator wrote them (BadInput for what Mailman never pickled)."""
    return _flat(message, 0)


def _flat(message: Any, depth: int) -> bytes:
    state = getattr(message, "state", None)
    if not isinstance(state, dict) or depth > MAX_DEPTH:
        raise BadInput("not a pickled email message (or nested past any real post)")
    headers = state.get(b"_headers")
    pairs = (
        [p for p in headers if isinstance(p, tuple) and len(p) == 2]
        if isinstance(headers, list)
        else []
    )
    lines = [_bytes(name) + b": " + _bytes(value) + b"\n" for name, value in pairs]
    payload = state.get(b"_payload")
    if not isinstance(payload, list):
        return b"".join(lines) + b"\n" + _bytes(payload)
    parts = [_flat(part, depth + 1) for part in payload]
    ctype = next((_bytes(v) for n, v in pairs if _bytes(n).lower() == b"content-type"), b"")
    found = _BOUNDARY.search(ctype)
    if not ctype.lower().lstrip().startswith(b"multipart/") or not found:
        return b"".join(lines) + b"\n" + b"".join(parts)  # message/rfc822: the one message
    boundary = found.group(1) if found.group(1) is not None else found.group(2)
    body = [] if state.get(b"preamble") is None else [_bytes(state[b"preamble"]) + b"\n"]
    body.append(b"--" + boundary + b"\n" + (parts[0] if parts else b""))
    body.extend(b"\n--" + boundary + b"\n" + part for part in parts[1:])
    body.append(b"\n--" + boundary + b"--")
    if state.get(b"epilogue") is not None:
        body.append(b"\n" + _bytes(state[b"epilogue"]))
    return b"".join(lines) + b"\n" + b"".join(body)


def _bytes(value: Any) -> bytes:
    """A Python 2 str as it was; unicode as UTF-8; an email.Header.Header by its chunks."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    chunks = (
        value.state.get(b"_chunks") if isinstance(getattr(value, "state", None), dict) else None
    )
    if isinstance(chunks, list):
        return b"".join(_bytes(c[0]) for c in chunks if isinstance(c, tuple) and c)
    return b""


def _text(value: Any) -> str:
    return pickle2.decode(value, "utf-8") if isinstance(value, bytes) else str(value or "")
