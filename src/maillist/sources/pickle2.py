"""Python 2 pickles (Mailman 2.1's config.pck) read as data, never as code.

A pickle names classes and functions for the reader to import and call; this reader imports
nothing. Every class or function a pickle names becomes an `Opaque` record of what it was given,
so a hostile file can build lists, dicts and strings but run nothing. Python 2 byte strings come
back as bytes and its unicode strings as str; `texts` turns the bytes into text in the list's
charset (Mailman 2.1 kept names typed by email as bytes, names typed on the web as unicode)."""

from __future__ import annotations

import functools
import io
import pickle
from pathlib import Path
from typing import Any

from maillist.errors import BadInput

MAX_BYTES = 256 * 1024 * 1024  # a 100,000-member config.pck is about 30 MB


class Opaque:
    """Whatever object the pickle described, as data: the class it named and its state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


@functools.cache  # one class a name, however often the pickle names it
def _named(module: str, name: str) -> type[Opaque]:
    return type(f"{module}.{name}", (Opaque,), {})


class _DataOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in {("__builtin__", "set"), ("builtins", "set")}:
            return set
        if (module, name) in {("__builtin__", "frozenset"), ("builtins", "frozenset")}:
            return frozenset
        return _named(module, name)


def load(path: Path) -> Any:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise BadInput(f"{path} is {size:,} bytes: larger than any config.pck maillist reads")
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None
    try:
        return _DataOnly(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:
        raise BadInput(f"{path} is not a readable Python pickle ({type(exc).__name__})") from None


def texts(value: Any, charset: str) -> Any:
    """`value` with every byte string decoded in `charset` (Latin-1 where it does not decode:
    Mailman itself read us-ascii names as Latin-1); dict keys too. Opaque records are left."""
    if isinstance(value, bytes):
        return decode(value, charset)
    if isinstance(value, dict):
        return {texts(k, charset): texts(v, charset) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(texts(v, charset) for v in value)
    return value


def decode(raw: bytes, charset: str) -> str:
    try:
        return raw.decode(charset or "latin-1")
    except (LookupError, UnicodeDecodeError):
        return raw.decode("latin-1")
