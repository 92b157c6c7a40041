"""The relay client against a real SMTP sink, pipelined and one command at a time."""

from __future__ import annotations

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
