"""Write a pickle as Python 2's cPickle writes Mailman 2.1's files: byte strings as
SHORT_BINSTRING/BINSTRING in the list's charset, unicode as BINUNICODE, ints as BININT. Protocol
1 (`cPickle.dump(x, fp, 1)`, what Mailman 2.1 calls for config.pck, request.pck and held posts):
no header, bools as INT, old-style class instances as MARK + GLOBAL + OBJ + BUILD. Protocol 2:
NEWTRUE/NEWFALSE, GLOBAL + NEWOBJ + BUILD. Python 3 cannot produce these opcodes for str."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Py2Str:
    """A Python 2 `str`: bytes."""

    data: bytes


@dataclass(frozen=True)
class Instance:
    """An object of a class Python 2 would import at load time, e.g. Mailman.Bouncer._BounceInfo."""

    module: str
    name: str
    state: dict[Any, Any] = field(default_factory=dict)


def dumps(value: Any, protocol: int = 2) -> bytes:
    header = b"\x80\x02" if protocol == 2 else b""
    return header + _value(value, protocol) + b"."


def _value(value: Any, protocol: int = 2) -> bytes:
    if value is None:
        return b"N"
    if isinstance(value, bool) and protocol == 1:
        return b"I01\n" if value else b"I00\n"
    if value is True:
        return b"\x88"
    if value is False:
        return b"\x89"
    if isinstance(value, int):
        if 0 <= value < 256:
            return b"K" + bytes([value])
        return b"J" + struct.pack("<i", value)
    if isinstance(value, float):
        return b"G" + struct.pack(">d", value)
    if isinstance(value, Py2Str):
        if len(value.data) < 256:
            return b"U" + bytes([len(value.data)]) + value.data
        return b"T" + struct.pack("<i", len(value.data)) + value.data
    if isinstance(value, str):
        data = value.encode("utf-8")
        return b"X" + struct.pack("<I", len(data)) + data
    if isinstance(value, tuple):
        return b"(" + b"".join(_value(v, protocol) for v in value) + b"t"
    if isinstance(value, list):
        return b"](" + b"".join(_value(v, protocol) for v in value) + b"e"
    if isinstance(value, dict):
        items = b"".join(_value(k, protocol) + _value(v, protocol) for k, v in value.items())
        return b"}(" + items + b"u"
    if isinstance(value, Instance) and protocol == 1:
        return (
            f"(c{value.module}\n{value.name}\no".encode()  # an old-style class's instance
            + _value(value.state, protocol)
            + b"b"
        )
    if isinstance(value, Instance):
        return (
            f"c{value.module}\n{value.name}\n".encode()
            + b")\x81"  # cls.__new__(cls)
            + _value(value.state)
            + b"b"
        )
    raise TypeError(type(value))


def hostile(command: str) -> bytes:
    """A pickle that, loaded by a trusting reader, runs `os.system(command)`."""
    data = command.encode()
    return b"\x80\x02cposix\nsystem\nU" + bytes([len(data)]) + data + b"\x85R."
