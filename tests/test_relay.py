"""The relay client against a real SMTP sink, pipelined and one command at a time."""

from __future__ import annotations

import asyncio

import pytest

from maillist.delivery.relay import RelaySettings, SmtpRelay
from maillist.smtpresult import Result
from sink import RunningSink, Sink, free_port

RCPTS = ["a@example.org", "b@example.org", "c@example.org"]
DATA = b"From: x@example.org\r\nSubject: s\r\n\r\n.leading dot\r\nbody\r\n"
MODES = pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "aiosmtplib"])


async def send(sink: Sink, port: int, rcpts: list[str] = RCPTS, times: int = 1) -> list[Result]:
    relay = SmtpRelay(RelaySettings("127.0.0.1", port, timeout=10))
    try:
        return [await relay.send("list-bounces@example.org", rcpts, DATA) for _ in range(times)]
    finally:
        await relay.close()


@MODES
async def test_delivers_and_reuses_the_connection(pipelining: bool) -> None:
    runner = RunningSink(Sink(pipelining=pipelining))
    with runner as sink:
        results = await send(sink, runner.port, times=3)
    assert all(r == Result(sent=tuple(RCPTS)) for r in results)
    assert [m.rcpts for m in sink.received] == [RCPTS] * 3
    assert sink.received[0].data == DATA  # dot-stuffing undone by the receiver: bytes intact


@MODES
@pytest.mark.parametrize(
    ("field", "reply", "state"),
    [
        ("mail_reply", "451 4.3.0 try later", "deferred"),
        ("mail_reply", "553 5.1.8 bad sender", "failed"),
        ("data_reply", "452 4.3.1 out of space", "deferred"),
        ("data_reply", "554 5.6.0 rejected", "failed"),
    ],
)
async def test_transaction_wide_refusals(
    pipelining: bool, field: str, reply: str, state: str
) -> None:
    sink = Sink(pipelining=pipelining)
    setattr(sink, field, reply)
    runner = RunningSink(sink)
    with runner as sink:
        [result] = await send(sink, runner.port)
        setattr(sink, field, "")
        [after] = await send(sink, runner.port)  # the connection is left in a usable state
    outcome = result.deferred if state == "deferred" else result.failed
    assert [a for a, _ in outcome] == RCPTS and reply.split()[0] in outcome[0][1]
    assert result.sent == () and after.sent == tuple(RCPTS)


@MODES
async def test_every_recipient_refused(pipelining: bool) -> None:
    refuse = {r: "550 5.1.1 no such user" for r in RCPTS}
    runner = RunningSink(Sink(pipelining=pipelining, refuse=refuse))
    with runner as sink:
        [result] = await send(sink, runner.port)
    assert result.sent == () and [a for a, _ in result.failed] == RCPTS


async def test_unreachable_relay_defers() -> None:
    relay = SmtpRelay(RelaySettings("127.0.0.1", free_port(), timeout=5))
    result = await relay.send("l@example.org", RCPTS, DATA)
    assert result.sent == () and len(result.deferred) == 3
    assert "relay unreachable" in result.deferred[0][1]


@MODES
async def test_a_relay_restart_costs_no_deferral(pipelining: bool) -> None:
    """The pooled connections die with the relay; the next batch goes out on a fresh one."""
    port = free_port()
    relay = SmtpRelay(RelaySettings("127.0.0.1", port, timeout=10))
    try:
        with RunningSink(Sink(pipelining=pipelining), port):
            first = [await relay.send("l-bounces@example.org", [r], DATA) for r in RCPTS]
        assert all(r.sent for r in first)
        with RunningSink(Sink(pipelining=pipelining), port) as restarted:
            again = await relay.send("l-bounces@example.org", RCPTS, DATA)
            assert again == Result(sent=tuple(RCPTS)), again
            assert [m.rcpts for m in restarted.received] == [RCPTS]
    finally:
        await relay.close()


@MODES
async def test_a_dead_relay_after_a_restart_still_defers(pipelining: bool) -> None:
    port = free_port()
    relay = SmtpRelay(RelaySettings("127.0.0.1", port, timeout=10))
    try:
        with RunningSink(Sink(pipelining=pipelining), port):
            assert (await relay.send("l-bounces@example.org", RCPTS, DATA)).sent
        gone = await relay.send("l-bounces@example.org", RCPTS, DATA)
        assert gone.sent == () and len(gone.deferred) == 3
    finally:
        await relay.close()


async def test_an_address_that_cannot_be_written_fails_without_raising() -> None:
    runner = RunningSink(Sink(pipelining=True))
    with runner:
        relay = SmtpRelay(RelaySettings("127.0.0.1", runner.port, timeout=10))
        try:
            result = await relay.send("l-bounces@example.org", ["a@example.org>x"], DATA)
            after = await relay.send("l-bounces@example.org", RCPTS, DATA)
        finally:
            await relay.close()
    assert result.sent == () and "unsafe envelope address" in result.failed[0][1]
    assert after.sent == tuple(RCPTS)


def copies(rcpts: list[str]) -> list[tuple[str, tuple[str, ...], bytes]]:
    """Personalised copies: a transaction a member, each with its own sender and content."""
    return [
        (f"l-bounces+{r.replace('@', '=')}@example.org", (r,), DATA + f"for {r}\r\n".encode())
        for r in rcpts
    ]


@MODES
async def test_copies_in_a_row_each_reach_their_member_intact(pipelining: bool) -> None:
    members = [f"m{i}@example.org" for i in range(12)]
    runner = RunningSink(Sink(pipelining=pipelining))
    with runner as sink:
        relay = SmtpRelay(RelaySettings("127.0.0.1", runner.port, timeout=10))
        try:
            results = await relay.send_each(copies(members))
            again = await relay.send_each(copies(members[:2]))  # the connection is reusable
        finally:
            await relay.close()
    assert results == [Result(sent=(m,)) for m in members]
    assert again == [Result(sent=(m,)) for m in members[:2]]
    got = [(m.mail_from, m.rcpts, m.data) for m in sink.received[: len(members)]]
    assert got == [(s, list(r), d) for s, r, d in copies(members)]


@MODES
async def test_copies_in_a_row_answer_each_refusal_alone(pipelining: bool) -> None:
    members = [f"m{i}@example.org" for i in range(6)]
    refuse = {"m1@example.org": "550 5.1.1 no such user", "m4@example.org": "450 4.2.1 busy"}
    runner = RunningSink(Sink(pipelining=pipelining, refuse=refuse))
    with runner as sink:
        relay = SmtpRelay(RelaySettings("127.0.0.1", runner.port, timeout=10))
        try:
            results = await relay.send_each(copies(members))
        finally:
            await relay.close()
    assert [r.sent for r in results] == [(m,) if m not in refuse else () for m in members]
    assert results[1].failed[0][1].startswith("550") and results[4].deferred[0][1].startswith("450")
    assert sorted(r for m in sink.received for r in m.rcpts) == sorted(set(members) - set(refuse))


@pytest.mark.parametrize(
    ("reply", "state"), [("452 4.3.1 full", "deferred"), ("554 5.6.0 no", "failed")]
)
async def test_copies_in_a_row_whose_content_is_refused(reply: str, state: str) -> None:
    runner = RunningSink(Sink(pipelining=True, data_reply=reply))
    with runner:
        relay = SmtpRelay(RelaySettings("127.0.0.1", runner.port, timeout=10))
        try:
            results = await relay.send_each(copies(RCPTS))
        finally:
            await relay.close()
    for result, member in zip(results, RCPTS, strict=True):
        outcome = result.deferred if state == "deferred" else result.failed
        assert result.sent == () and outcome == ((member, reply),)


async def test_a_relay_that_drops_mid_row_keeps_what_it_answered() -> None:
    """A raw SMTP server that hangs up after accepting two messages: those two are sent, the
    rest wait (deferred), nothing is reported sent that was not answered."""
    accepted = 0

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        writer.write(b"220 raw ESMTP\r\n")
        in_data = False
        while line := await reader.readline():
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    accepted += 1
                    if accepted == 2:
                        writer.write(b"250 2.0.0 ok\r\n")
                        await writer.drain()
                        writer.close()
                        return
                    writer.write(b"250 2.0.0 ok\r\n")
                continue
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-raw\r\n250 PIPELINING\r\n")
            elif verb == b"DATA":
                in_data = True
                writer.write(b"354 go\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
            else:
                writer.write(b"250 ok\r\n")
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    relay = SmtpRelay(RelaySettings("127.0.0.1", port, timeout=10))
    members = [f"m{i}@example.org" for i in range(5)]
    try:
        results = await asyncio.wait_for(relay.send_each(copies(members)), 30)
    finally:
        await relay.close()
        server.close()
        await server.wait_closed()
    assert [r.sent for r in results[:2]] == [(members[0],), (members[1],)]
    assert all(r.sent == () and r.deferred for r in results[2:]), results
    assert all(r.deferred[0][0] == m for r, m in zip(results[2:], members[2:], strict=True))


async def test_a_copy_whose_address_cannot_be_written_fails_alone() -> None:
    runner = RunningSink(Sink(pipelining=True))
    with runner as sink:
        relay = SmtpRelay(RelaySettings("127.0.0.1", runner.port, timeout=10))
        try:
            items = copies(RCPTS)
            items[1] = (items[1][0], ("b@example.org>x",), items[1][2])
            results = await relay.send_each(items)
        finally:
            await relay.close()
    assert results[0].sent == ("a@example.org",) and results[2].sent == ("c@example.org",)
    assert "unsafe envelope address" in results[1].failed[0][1]
    assert sorted(r for m in sink.received for r in m.rcpts) == ["a@example.org", "c@example.org"]
