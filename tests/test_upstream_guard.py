"""Guards on what we use of aiosmtpd, uvicorn and dkimpy beyond their documented API.

src/maillist/smtp/server.py keeps three non-public parts of aiosmtpd (`_reader`, an override of
`_getaddr`, an override of `__dir__` that aiosmtpd's constructor scans) and repeats aiosmtpd's
smtp_DATA, whose checks and replies no aiosmtpd document promises; src/maillist/smtp/data.py reads
the data the way aiosmtpd's smtp_DATA does. src/maillist/cli/serve.py overrides uvicorn's
`Server.capture_signals` so that SIGINT/SIGTERM stay with our loop.

Each test here fails when the installed aiosmtpd or uvicorn is not what that code was written and
measured against, and its message says which override to re-check, in which file. The versions
pinned in pyproject.toml are read from there, so the pin and these tests cannot drift apart."""

from __future__ import annotations

import ast
import asyncio
import hashlib
import inspect
import re
import signal
import socket
import textwrap
import threading
import tomllib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiosmtpd
import aiosmtpd.smtp
import pytest
import uvicorn
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from maillist.smtp.data import READ_ALL
from maillist.smtp.server import (
    _REWRITE,
    ListLMTP,
    ListSMTP,
    ServerSettings,
    SessionGate,
    _Limited,
)

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
TESTED_AIOSMTPD = "1.4.6"  # what server.py's overrides and data.py were measured and tested with
TESTED_UVICORN = "0.54.0"  # what cli/serve.py's _EmbeddedUvicorn was tested with

SERVER_PY = "src/maillist/smtp/server.py"
DATA_PY = "src/maillist/smtp/data.py"
SERVE_PY = "src/maillist/cli/serve.py"


# --- versions --------------------------------------------------------------------------------


def _version(text: str) -> tuple[int, ...]:
    match = re.match(r"\d+(?:\.\d+)*", text)
    assert match is not None, f"cannot read a version from {text!r}"
    return tuple(int(part) for part in match.group().split("."))


def _pin(package: str) -> tuple[str, str]:
    """The `>=low,<high` pin of `package` in pyproject.toml's dependencies."""
    dependencies: list[str] = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    for spec in dependencies:
        match = re.fullmatch(rf"{re.escape(package)}\s*>=\s*([\w.]+)\s*,\s*<\s*([\w.]+)", spec)
        if match is not None:
            return match.group(1), match.group(2)
    raise AssertionError(
        f"pyproject.toml has no '{package}>=LOW,<HIGH' dependency: {package} must be pinned to the "
        f"versions tested with (tests/test_upstream_guard.py reads the pin)"
    )


@pytest.mark.parametrize(
    ("package", "installed", "tested", "recheck"),
    [
        (
            "aiosmtpd",
            aiosmtpd.__version__,
            TESTED_AIOSMTPD,
            f"{SERVER_PY} (_Limited.smtp_DATA, _getaddr, __dir__, _REWRITE) and {DATA_PY} against "
            "the new aiosmtpd/smtp.py (SMTP.smtp_DATA, _getaddr, __init__, _cb_client_connected)",
        ),
        (
            "uvicorn",
            uvicorn.__version__,
            TESTED_UVICORN,
            f"{SERVE_PY} (_EmbeddedUvicorn.capture_signals, which must keep uvicorn away from "
            "SIGINT/SIGTERM) against the new uvicorn/server.py (Server.serve, capture_signals)",
        ),
    ],
)
def test_installed_version_is_one_we_pinned_and_tested(
    package: str, installed: str, tested: str, recheck: str
) -> None:
    low, high = _pin(package)
    assert _version(low) <= _version(tested) < _version(high), (
        f"pyproject.toml pins {package}>={low},<{high}, which leaves out {tested}, the version "
        f"tests/test_upstream_guard.py says was tested (TESTED_{package.upper()})"
    )
    assert _version(low) <= _version(installed) < _version(high), (
        f"{package} {installed} is installed, outside the pin {package}>={low},<{high} in "
        f"pyproject.toml (tested with {tested}). Before moving the pin, re-check {recheck}; run "
        "tests/test_upstream_guard.py and tests/test_smtp_*.py against it; then update the pin "
        f"and TESTED_{package.upper()} here."
    )


# --- aiosmtpd: the source of what we override or repeat ---------------------------------------

# sha256 of inspect.getsource() of each aiosmtpd 1.4.6 method that our code overrides, repeats or
# reaches into: any edit to one of them (a patch release included) fails here, naming what to
# re-check. When the re-check is done, put the new digest here.
AIOSMTPD_SOURCES = {
    "smtp_DATA": (
        "3a33f30d3fd6d02f39c7d78a08288bffea9170525b62e2161568041ae7e018df",
        f"{SERVER_PY} _Limited.smtp_DATA repeats its checks, their order and its replies, and "
        f"{DATA_PY} repeats how it reads the data (dot-stuffing, the terminator, 552 for too much "
        "data, 500 for an overlong line, which wins when both happen); tests/test_smtp_data.py "
        "compares the two over sockets",
    ),
    "_getaddr": (
        "0aeb21c56ac1260e784e430a340459c83c23640a85965e7b8de3e1ada74d85f5",
        f"{SERVER_PY} _Limited._getaddr overrides it with a fast path that must give the same "
        "results (tests/test_smtp_paths.py) and falls back to it",
    ),
    "_set_post_data_state": (
        "1dc8a8abca2a81644a605b8ebf427fc7472eeadf5149dd3cf2591fa86b2256e9",
        f"{SERVER_PY} _Limited.smtp_DATA does what it does (a new envelope from _create_envelope) "
        "after DATA instead of calling it: if it now resets more, do that too",
    ),
    "_cb_client_connected": (
        "a73e95bb7f362ab9dbd9f0a4f310c203c525c0c98682dede6f98af4c97d15ad4",
        f"{SERVER_PY} _Limited.smtp_DATA reads DATA from the `_reader` this sets",
    ),
    "__init__": (
        "8a9ca80f23ad9bf273e58e284170e9f919dc6269b280ca0624ac0603a8ad3604",
        f"{SERVER_PY} _Limited.__dir__ hides every name but smtp_* and auth_* from what this "
        "scans with dir()/inspect.getmembers(); and _Limited.__init__'s arguments",
    ),
}


@pytest.mark.parametrize("name", sorted(AIOSMTPD_SOURCES))
def test_aiosmtpd_code_we_depend_on_is_unchanged(name: str) -> None:
    digest, recheck = AIOSMTPD_SOURCES[name]
    source = inspect.getsource(getattr(SMTP, name))
    assert hashlib.sha256(source.encode()).hexdigest() == digest, (
        f"aiosmtpd {aiosmtpd.__version__} changed SMTP.{name} (tested: {TESTED_AIOSMTPD}). "
        f"Re-check: {recheck}. Then record its new sha256 in AIOSMTPD_SOURCES in "
        "tests/test_upstream_guard.py."
    )


# --- aiosmtpd: the names we use -----------------------------------------------------------------


def _parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_getaddr_is_the_one_we_override() -> None:
    """server.py's _getaddr must still be what aiosmtpd calls to parse MAIL/RCPT/VRFY paths."""
    where = f"{SERVER_PY} _Limited._getaddr overrides SMTP._getaddr(self, arg) -> (address, rest)"
    assert callable(getattr(SMTP, "_getaddr", None)), f"SMTP._getaddr is gone: {where}"
    assert _parameters(SMTP._getaddr) == ["self", "arg"], f"SMTP._getaddr's signature: {where}"
    assert _parameters(ListSMTP._getaddr) == ["self", "arg"]
    for command in ("smtp_MAIL", "smtp_RCPT", "smtp_VRFY"):
        assert "self._getaddr(arg)" in inspect.getsource(getattr(SMTP, command)), (
            f"SMTP.{command} no longer parses its path with self._getaddr(arg), so the fast path "
            f"is bypassed: {where}"
        )


def test_documented_names_we_use_keep_their_shape() -> None:
    """What _Limited passes to aiosmtpd's constructor and calls on it (documented or plainly
    public, but a change would break server.py all the same)."""
    where = f"re-check {SERVER_PY} _Limited"
    handler = object()
    inspect.signature(SMTP).bind(
        handler,
        data_size_limit=1,
        hostname="x",
        ident="maillist",
        timeout=1.0,
        enable_SMTPUTF8=True,
    )
    assert _parameters(SMTP.check_helo_needed) == ["self", "helo"], where
    assert _parameters(SMTP.check_auth_needed) == ["self", "caller_method"], where
    assert _parameters(SMTP.push) == ["self", "status"], where
    assert _parameters(SMTP._create_envelope) == ["self"], where
    for command in ("smtp_HELO", "smtp_EHLO", "smtp_MAIL", "smtp_RCPT", "smtp_DATA"):
        assert len(_parameters(getattr(SMTP, command))) == 2, f"SMTP.{command}: {where}"
        assert inspect.iscoroutinefunction(getattr(SMTP, command)), f"SMTP.{command}: {where}"
    assert len(_parameters(LMTP.smtp_LHLO)) == 2, f"LMTP.smtp_LHLO: {where}"
    assert SMTP.line_length_limit == 1001, (
        f"SMTP.line_length_limit is {SMTP.line_length_limit}, not 1001: {DATA_PY} counts a line "
        "with its CRLF against it exactly as aiosmtpd does (and server.py's 500 reply says 1000)"
    )


def test_post_data_state_is_a_new_envelope() -> None:
    """After DATA, server.py sets `envelope = _create_envelope()` (documented) instead of calling
    aiosmtpd's private _set_post_data_state: that must be all the latter does."""

    async def check() -> None:
        stock = SMTP(object())
        stock.envelope = Envelope()
        before = dict(vars(stock))
        stock._set_post_data_state()  # type: ignore[no-untyped-call]
        missing = object()
        changed = {k for k, v in vars(stock).items() if before.get(k, missing) is not v}
        assert changed == {"envelope"}, (
            f"aiosmtpd's _set_post_data_state now also resets {sorted(changed - {'envelope'})}: "
            f"{SERVER_PY} _Limited.smtp_DATA must reset them too"
        )
        assert type(stock.envelope) is Envelope
        assert vars(stock.envelope) == vars(Envelope())

    asyncio.run(check())


def test_commands_are_found_through_dir() -> None:
    """_Limited.__dir__ lists only smtp_* and auth_* names: that works only while aiosmtpd's
    constructor finds commands with dir(self), AUTH mechanisms with inspect.getmembers(self) (which
    uses dir()) and handler hooks with dir(handler) (handler.py trims that one)."""
    where = (
        f"re-check {SERVER_PY} _Limited.__dir__ and src/maillist/smtp/handler.py Handler.__dir__"
    )

    class Hiding(SMTP):
        def __dir__(self) -> list[str]:
            return [n for n in object.__dir__(self) if n not in ("smtp_NOOP", "auth_PLAIN")]

    class HandlerHiding:
        async def handle_DATA(self, *args: Any) -> str:
            return "250 OK"

        def __dir__(self) -> list[str]:
            return []

    async def check() -> None:
        stock, hiding = SMTP(HandlerHiding()), Hiding(HandlerHiding())
        for protocol in (stock, hiding):
            assert isinstance(getattr(protocol, "_smtp_methods", None), dict), where
            assert isinstance(getattr(protocol, "_auth_methods", None), dict), where
            assert isinstance(getattr(protocol, "_handle_hooks", None), dict), where
        assert "NOOP" in stock._smtp_methods and "NOOP" not in hiding._smtp_methods, (
            f"aiosmtpd no longer finds smtp_* commands through dir(self): {where}"
        )
        assert "PLAIN" in stock._auth_methods and "PLAIN" not in hiding._auth_methods, (
            f"aiosmtpd no longer finds auth_* mechanisms through dir(self): {where}"
        )
        assert "DATA" not in stock._handle_hooks, (
            f"aiosmtpd no longer finds handler hooks through dir(handler): {where}"
        )
        ours = ListSMTP(HandlerHiding(), SessionGate(1, 1), ServerSettings())
        every = sorted(n for n in object.__dir__(ours) if n.startswith(("smtp_", "auth_")))
        assert sorted(dir(ours)) == every

    asyncio.run(check())


def test_rewritten_replies_are_aiosmtpd_texts() -> None:
    """_REWRITE matches aiosmtpd's reply texts exactly: a text aiosmtpd no longer sends is a
    rewrite that silently stopped happening."""
    tree = ast.parse(inspect.getsource(aiosmtpd.smtp))
    texts = {
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }
    missing = sorted(set(_REWRITE) - texts)
    assert not missing, (
        f"aiosmtpd {aiosmtpd.__version__} no longer sends {missing}: update the keys of _REWRITE "
        f"in {SERVER_PY} to its new texts"
    )


# The calls SMTP.smtp_DATA makes on self, in source order: the checks and replies that
# server.py's smtp_DATA repeats, in the same order (aiosmtpd 1.4.6).
AIOSMTPD_DATA_STEPS = [
    "check_helo_needed()",
    "check_auth_needed('DATA')",
    "push('503 Error: need RCPT command')",
    "push('501 Syntax: DATA')",
    "push('354 End data with <CR><LF>.<CR><LF>')",
    "push('500 Line too long (see RFC5321 4.5.3.1.6)')",
    "push('552 Error: Too much mail data')",
    "_set_post_data_state()",
    "push('500 Error: strict ASCII mode')",  # decode_data only: server.py never sets it
    "_call_handler_hook('DATA')",
    "_set_post_data_state()",
    "push(...)",  # '250 OK' if no handle_DATA hook, else its status
]


def _steps(function: Callable[..., Any]) -> list[str]:
    steps: list[tuple[int, int, str]] = []
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(function)))):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "self"
        ):
            continue
        args = [repr(a.value) if isinstance(a, ast.Constant) else "..." for a in node.args]
        steps.append((node.lineno, node.col_offset, f"{node.func.attr}({', '.join(args)})"))
    return [step for *_, step in sorted(steps)]


def test_smtp_data_checks_in_the_order_server_py_repeats() -> None:
    found = _steps(SMTP.smtp_DATA)
    assert found == AIOSMTPD_DATA_STEPS, (
        f"aiosmtpd {aiosmtpd.__version__}'s smtp_DATA now checks or replies differently: make "
        f"{SERVER_PY} _Limited.smtp_DATA (and {DATA_PY}) do the same, then update "
        f"AIOSMTPD_DATA_STEPS.\nexpected {AIOSMTPD_DATA_STEPS}\nfound    {found}"
    )


# --- aiosmtpd: behaviour, side by side over sockets --------------------------------------------


class _Recorder:
    def __init__(self, with_hook: bool = True) -> None:
        self.contents: list[bytes] = []
        if with_hook:
            self.handle_DATA = self._handle_DATA

    def size_limit(self) -> int:
        return 1000

    async def _handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.original_content, bytes)
        self.contents.append(envelope.original_content)
        return f"250 OK stored {len(envelope.original_content)}"


def _ours(handler: Any) -> ListSMTP:
    return ListSMTP(handler, SessionGate(5, 5), ServerSettings(hostname="x", default_max_size=1000))


def _stock(handler: Any) -> SMTP:
    return SMTP(handler, data_size_limit=1000, hostname="x", enable_SMTPUTF8=True)


async def _session(
    factory: Callable[[], SMTP],
    talk: Callable[[SMTP, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> None:
    """Serve one connection with factory() and run talk() on it after the 220 greeting."""
    made: list[SMTP] = []

    def make() -> SMTP:
        made.append(factory())
        return made[-1]

    server = await asyncio.get_running_loop().create_server(make, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"220")
        await talk(made[0], reader, writer)
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


async def _reply(reader: asyncio.StreamReader) -> bytes:
    """One whole reply; of a multi-line one, its last line."""
    while True:
        line = await asyncio.wait_for(reader.readline(), 10)
        if line[3:4] != b"-":
            return line


CONVERSATIONS = {
    "before a greeting": [b"DATA", b"DATA x"],
    "before MAIL": [b"EHLO x", b"DATA", b"DATA x"],
    "before RCPT": [b"EHLO x", b"MAIL FROM:<a@example.org>", b"DATA x", b"DATA"],
    "an argument": [b"EHLO x", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.org>", b"DATA x"],
    "a message, then a new transaction": [
        b"EHLO x",
        b"MAIL FROM:<a@example.org>",
        b"RCPT TO:<b@example.org>",
        b"DATA",
        b"..x\r\n.",  # the data and its terminator
        b"DATA",  # the envelope is new: no recipients
        b"RCPT TO:<b@example.org>",  # nor a sender
        b"MAIL FROM:<a@example.org>",  # and no "nested MAIL"
    ],
    "too much data": [
        b"EHLO x",
        b"MAIL FROM:<a@example.org>",
        b"RCPT TO:<b@example.org>",
        b"DATA",
        b"y" * 900 + b"\r\n" + b"y" * 900 + b"\r\n.",
        b"DATA",
    ],
}


@pytest.mark.parametrize("with_hook", [True, False], ids=["handle_DATA", "no handle_DATA"])
@pytest.mark.parametrize("conversation", sorted(CONVERSATIONS))
def test_data_replies_are_aiosmtpds(conversation: str, with_hook: bool) -> None:
    """The same commands to aiosmtpd's SMTP and to ours get the same replies (ours rewritten back
    to aiosmtpd's texts): smtp_DATA's checks, their order, and the state after DATA."""
    back = {new.encode(): old.encode() for old, new in _REWRITE.items()}

    async def replies(factory: Callable[[Any], SMTP]) -> tuple[list[bytes], list[bytes]]:
        handler = _Recorder(with_hook)
        got: list[bytes] = []

        async def talk(_: SMTP, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for line in CONVERSATIONS[conversation]:
                writer.write(line + b"\r\n")
                reply = (await _reply(reader)).rstrip(b"\r\n")
                got.append(back.get(reply, reply))

        await _session(lambda: factory(handler), talk)
        return got, handler.contents

    async def both() -> None:
        theirs, ours = await replies(_stock), await replies(_ours)
        assert ours == theirs, (
            f"{SERVER_PY} _Limited.smtp_DATA no longer answers as aiosmtpd "
            f"{aiosmtpd.__version__}'s smtp_DATA does ({conversation}): make it\n"
            f"ours   {ours}\ntheirs {theirs}"
        )

    asyncio.run(both())


def test_our_rewrites_reach_the_client() -> None:
    """Each of aiosmtpd's replies that _REWRITE renames, provoked over a socket."""

    async def talk(
        protocol: SMTP, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"EHLO " + b"h" * 3000 + b"\r\n")
        assert await _reply(reader) == b"500 5.5.2 Command line too long\r\n"
        writer.write(b"EHLO x\r\nMAIL FROM:<a@example.org> SIZE=5000\r\n")
        await _reply(reader)
        assert await _reply(reader) == b"552 5.3.4 Message too big\r\n"
        writer.write(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
        for _ in range(3):
            await _reply(reader)
        writer.write(b"z" * 1200 + b"\r\n.\r\n")
        assert await _reply(reader) == b"500 5.5.2 Line too long (limit 1000 octets)\r\n"
        writer.write(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
        for _ in range(3):
            await _reply(reader)
        writer.write((b"z" * 500 + b"\r\n") * 3 + b".\r\n")
        assert await _reply(reader) == b"552 5.3.4 Message too big for this list\r\n"

    asyncio.run(_session(lambda: _ours(_Recorder()), talk))


def test_reader_is_the_sessions_stream_reader() -> None:
    """server.py's smtp_DATA reads the data from aiosmtpd's private `_reader`: it must be set once
    the connection is made, be an asyncio.StreamReader, and hold what the client sends."""

    async def talk(
        protocol: SMTP, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        where = f"aiosmtpd {aiosmtpd.__version__}: re-check {SERVER_PY} _Limited.smtp_DATA"
        stream = getattr(protocol, "_reader", None)
        assert isinstance(stream, asyncio.StreamReader), f"no SMTP._reader StreamReader: {where}"
        assert isinstance(getattr(protocol, "_writer", None), asyncio.StreamWriter), where
        writer.write(b"EHLO x\r\n")
        await _reply(reader)
        assert protocol._reader is stream, f"SMTP._reader was replaced mid-session: {where}"

    asyncio.run(_session(lambda: _ours(_Recorder()), talk))
    assert _parameters(SMTP._cb_client_connected) == ["self", "reader", "writer"]


def test_stream_reader_takes_data_back() -> None:
    """data.py reads all that is buffered with read(READ_ALL), then gives what follows the
    terminator back with StreamReader.feed_data (asyncio's, public name, undocumented)."""
    where = f"re-check {DATA_PY} read_data"

    async def check() -> None:
        stream = asyncio.StreamReader(limit=1001)
        assert _parameters(asyncio.StreamReader.feed_data) == ["self", "data"], where
        stream.feed_data(b"a" * 5000 + b"\r\n.\r\n")
        assert len(await stream.read(READ_ALL)) == 5005, f"read(n) no longer takes it all: {where}"
        stream.feed_data(b"NOOP\r\n")
        stream.feed_data(b"QUIT\r\n")
        assert await stream.readuntil() == b"NOOP\r\n", where
        assert await stream.readuntil() == b"QUIT\r\n", where

    asyncio.run(check())


def _assigned_on_self(cls: type) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(inspect.getsource(cls))):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            names.add(node.attr)
    return names


# aiosmtpd names our classes define or set on purpose: documented commands, the documented push
# and envelope, asyncio's protocol methods, and the one private method we override (_getaddr, whose
# guard is above). Anything else we define that aiosmtpd also has is a clash.
OVERRIDDEN = {
    "smtp_HELO",
    "smtp_EHLO",
    "smtp_LHLO",
    "smtp_MAIL",
    "smtp_RCPT",
    "smtp_DATA",
    "push",
    "envelope",
    "connection_made",
    "connection_lost",
    "_getaddr",
}


def test_our_names_do_not_clash_with_aiosmtpds() -> None:
    """_Limited adds its own attributes and methods to aiosmtpd's SMTP (_deadline, _client,
    _progress, started, ...): a new aiosmtpd that uses one of those names would be silently
    broken by ours, or break ours."""

    async def stock_names() -> set[str]:
        names = set(dir(SMTP)) | set(dir(LMTP))

        async def talk(protocol: SMTP, *_: Any) -> None:
            names.update(vars(protocol))

        await _session(lambda: _stock(_Recorder()), talk)
        await _session(lambda: LMTP(_Recorder(), hostname="x"), talk)
        return names

    ours: set[str] = set()
    for cls in (_Limited, ListSMTP, ListLMTP):
        ours |= set(vars(cls)) | _assigned_on_self(cls)
    ours = {n for n in ours if not (n.startswith("__") and n.endswith("__"))}
    clashes = (ours & asyncio.run(stock_names())) - OVERRIDDEN
    assert not clashes, (
        f"aiosmtpd {aiosmtpd.__version__} now has {sorted(clashes)} too: rename ours in "
        f"{SERVER_PY} _Limited/ListSMTP/ListLMTP (or, if it is a deliberate override, guard it "
        "here and add it to OVERRIDDEN)"
    )
    unused = OVERRIDDEN - ours
    assert not unused, f"OVERRIDDEN lists {sorted(unused)}, which {SERVER_PY} no longer defines"


# --- uvicorn: serve.py keeps SIGINT/SIGTERM ------------------------------------------------------


def _embedded() -> type[uvicorn.Server]:
    from maillist.cli.serve import _EmbeddedUvicorn

    return _EmbeddedUvicorn


def test_embedded_uvicorn_overrides_names_uvicorn_has() -> None:
    """serve.py's _EmbeddedUvicorn overrides uvicorn.Server.capture_signals (public name, not
    documented; uvicorn has no setting to leave signals alone: the one proposed in uvicorn pull
    request #402 was never merged), which Server.serve enters around the whole of serving. It also
    overrides install_signal_handlers, which uvicorn 0.29 replaced with capture_signals: dead code
    under our pin (>=0.29), tolerated here until serve.py drops it."""
    where = f"uvicorn {uvicorn.__version__}: re-check {SERVE_PY} _EmbeddedUvicorn"
    embedded = _embedded()
    capture = getattr(uvicorn.Server, "capture_signals", None)
    assert callable(capture), f"uvicorn.Server.capture_signals is gone: {where}"
    assert _parameters(capture) == ["self"], where
    assert "with self.capture_signals():" in inspect.getsource(uvicorn.Server.serve), (
        f"uvicorn.Server.serve no longer takes signals through capture_signals: {where}"
    )
    assert "sockets" in _parameters(uvicorn.Server.serve), where
    overrides = {n for n in vars(embedded) if not n.startswith("__")}
    dead = overrides - set(dir(uvicorn.Server)) - {"install_signal_handlers"}
    assert not dead, f"{sorted(dead)} override nothing in uvicorn.Server: {where}"
    server = embedded(uvicorn.Config(_app, log_level="warning", lifespan="off"))
    assert server.should_exit is False, (
        f"uvicorn.Server.should_exit (how serve.py stops it): {where}"
    )


async def _app(scope: Any, receive: Any, send: Any) -> None:
    return None


def _handlers() -> dict[int, Any]:
    return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}


@pytest.fixture
def loop_signals() -> Iterator[None]:
    saved = _handlers()
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.usefixtures("loop_signals")
def test_embedded_uvicorn_leaves_our_signal_handlers_alone() -> None:
    """While _EmbeddedUvicorn serves (and after it stops), SIGINT/SIGTERM are still the handlers
    our loop installed; stock uvicorn.Server, run the same way, takes them over (so this test can
    see it happen)."""
    assert threading.current_thread() is threading.main_thread()  # uvicorn only captures there

    async def serve(
        cls: type[uvicorn.Server],
    ) -> tuple[dict[int, Any], dict[int, Any], dict[int, Any]]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: None)
        try:
            before = _handlers()
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            config = uvicorn.Config(_app, log_level="warning", lifespan="off", access_log=False)
            server = cls(config)
            task = asyncio.create_task(server.serve(sockets=[sock]))
            for _ in range(500):
                if server.started or task.done():
                    break
                await asyncio.sleep(0.01)
            assert server.started, "uvicorn did not start"
            during = _handlers()
            server.should_exit = True
            await asyncio.wait_for(task, 10)
            return before, during, _handlers()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    before, during, after = asyncio.run(serve(_embedded()))
    assert during == before and after == before, (
        f"uvicorn {uvicorn.__version__} replaced our SIGINT/SIGTERM handlers while serving "
        f"despite {SERVE_PY} _EmbeddedUvicorn: find where its Server now installs them and "
        "override that instead (SIGTERM must reach serve.py's stop event, which drains SMTP "
        "sessions first)"
    )
    before, during, _ = asyncio.run(serve(uvicorn.Server))
    assert during != before, (
        "stock uvicorn.Server no longer takes SIGINT/SIGTERM: this test sees nothing"
    )


def test_dkimpy_signs_through_the_rsa_function_we_replace() -> None:
    """src/maillist/mail/signing.py replaces dkimpy's module-level RSASSA_PKCS1_v1_5_sign with an
    OpenSSL one (12x faster per sealed copy). That works only while dkimpy's gen_header calls
    it by that global name; and the signature must be byte for byte dkimpy's own."""
    import dkim  # type: ignore[import-untyped]
    from dkim import crypto

    from maillist.mail import signing

    source = inspect.getsource(dkim.DomainSigner.gen_header)
    assert "RSASSA_PKCS1_v1_5_sign(h, pk)" in source, (
        "dkimpy no longer signs through RSASSA_PKCS1_v1_5_sign: re-check signing._use_openssl"
    )
    private, _ = signing.new_key()
    key = crypto.parse_pem_private_key(private.encode())
    for digest in (hashlib.sha256(b"a copy"), hashlib.sha1(b"a copy")):
        assert signing._openssl_rsa(digest, key) == crypto.RSASSA_PKCS1_v1_5_sign(digest, key)
