"""Redistribution end to end: posts in over SMTP, copies out to a real SMTP sink."""

from __future__ import annotations

import json
import shutil
import smtplib
import subprocess
import time
from collections import Counter
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest

import dbutil
from serverutil import Server, message
from sink import RunningSink, Sink, free_port
from test_smtp_receive import admin

WAIT = 30.0


def setup_team(db: Path, *extra: tuple[str, ...]) -> None:
    for args in (
        ("lists", "create", "team@example.org", "--name", "Team"),
        ("members", "add", "team@example.org", "anne@example.org", "--name", "Anne"),
        (
            "members",
            "add",
            "team@example.org",
            "bob@example.org",
            "carl@example.org",
            "dora@example.org",
        ),
        ("members", "add", "team@example.org", "erin@other.example"),
        ("members", "set", "team@example.org", "carl@example.org", "mode", "nomail"),
        ("members", "set", "team@example.org", "dora@example.org", "status", "disabled"),
        ("lists", "set", "team@example.org", "badges", "unless-forged"),  # posts here are unsigned
        ("badges", "grant", "anne@example.org", "Licensee Badge"),
        *extra,
    ):
        result = admin(db, *args)
        assert result.returncode == 0, result.stderr


def post(
    port: int, raw: bytes, sender: str = "anne@example.org", rcpt: str = "team@example.org"
) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(sender, [rcpt], raw)


def wait_until(check: object, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def queue(db: Path) -> dict[str, object]:
    result = admin(db, "queue", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "aiosmtplib"])
def test_post_reaches_every_regular_member(tmp_path: Path, pipelining: bool) -> None:
    db = tmp_path / "m.db"
    setup_team(db)
    with RunningSink(Sink(pipelining=pipelining)) as sink:
        srv = Server(db, "--relay", f"127.0.0.1:{sink_port(sink)}")
        try:
            post(
                srv.port,
                message(
                    sender="Anne <anne@example.org>",
                    subject="Rotations",
                    message_id="p1@example.org",
                ),
            )
            sink.wait(lambda s: len(s.rcpts()) >= 3)
            assert sorted(sink.rcpts()) == [
                "anne@example.org",
                "bob@example.org",
                "erin@other.example",
            ]
            # One transaction per domain; the list's bounce address as envelope sender.
            assert sorted(len(m.rcpts) for m in sink.received) == [1, 2]
            assert {m.mail_from for m in sink.received} == {"team-bounces@example.org"}
            copy = message_from_bytes(sink.received[0].data, policy=default)
            assert copy["Subject"] == "[Team] Rotations"
            assert copy["Message-ID"] == "<p1@example.org>"
            assert copy["List-Id"] == "Team <team.example.org>"
            assert copy["List-Post"] == "<mailto:team@example.org>"
            assert copy["X-Maillist-Badges"] == "Licensee Badge"
            assert copy["Precedence"] == "list"
            assert copy["X-Loop"] == "team@example.org"
            assert "Anne - Licensee Badge" in copy.get_content()
            # The author can opt out of their own posts.
            assert (
                admin(
                    db,
                    "members",
                    "set",
                    "team@example.org",
                    "anne@example.org",
                    "receive_own",
                    "no",
                ).returncode
                == 0
            )
            post(
                srv.port,
                message(sender="anne@example.org", subject="Again", message_id="p2@example.org"),
            )
            sink.wait(lambda s: len(s.rcpts()) >= 5)
            second = [r for m in sink.received if b"p2@example.org" in m.data for r in m.rcpts]
            assert sorted(second) == ["bob@example.org", "erin@other.example"]
            status = queue(db)
            assert status["states"] == {"sent": {"batches": 4, "recipients": 5}}
        finally:
            srv.stop()


def sink_port(sink: Sink) -> int:
    return sink.port


def test_relay_down_then_up_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    setup_team(db)
    port = free_port()
    srv = Server(db, "--relay", f"127.0.0.1:{port}")
    try:
        post(srv.port, message(sender="anne@example.org", message_id="down-1@example.org"))
        # Both batches (one per domain) have been tried and deferred.
        wait_until(lambda: set(queue(db)["states"]) == {"deferred"})  # type: ignore[call-overload]
        deferred = [b for b in queue(db)["batches"] if b["state"] == "deferred"]  # type: ignore[attr-defined]
        assert deferred and all("relay unreachable" in b["last_error"] for b in deferred)
        with RunningSink(Sink(), port=port) as sink:
            assert admin(db, "queue", "retry").returncode == 0
            sink.wait(lambda s: len(s.rcpts()) >= 3)
            assert sorted(sink.rcpts()) == [
                "anne@example.org",
                "bob@example.org",
                "erin@other.example",
            ]
            wait_until(lambda: set(queue(db)["states"]) == {"sent"})  # type: ignore[call-overload]
            srv.stop()  # before the sink: stopping it waits for the relay's pooled connections
    finally:
        srv.stop()


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "aiosmtplib"])
def test_4xx_defers_and_5xx_fails_one_recipient_only(tmp_path: Path, pipelining: bool) -> None:
    db = tmp_path / "m.db"
    setup_team(db, ("members", "add", "team@example.org", "soft@example.org", "hard@example.org"))
    refuse = {
        "soft@example.org": "450 4.2.1 Mailbox busy, try later",
        "hard@example.org": "550 5.1.1 No such user",
    }
    with RunningSink(Sink(refuse=refuse, pipelining=pipelining)) as sink:
        srv = Server(db, "--relay", f"127.0.0.1:{sink_port(sink)}")
        try:
            post(srv.port, message(sender="anne@example.org", message_id="mixed-1@example.org"))
            sink.wait(lambda s: len(s.rcpts()) >= 3)
            wait_until(lambda: "deferred" in queue(db)["states"])  # type: ignore[operator]
            assert sorted(sink.rcpts()) == [
                "anne@example.org",
                "bob@example.org",
                "erin@other.example",
            ]
            [batch] = [b for b in queue(db)["batches"] if b["state"] == "deferred"]  # type: ignore[attr-defined]
            assert batch["recipients"] == 1 and "450 4.2.1" in batch["last_error"]
            failures = srv.rows("SELECT address, reply FROM delivery_failures")
            assert failures == [("hard@example.org", "550 5.1.1 No such user")]
            sink.refuse.clear()
            assert admin(db, "queue", "retry").returncode == 0
            sink.wait(lambda s: "soft@example.org" in s.rcpts())
            assert "hard@example.org" not in sink.rcpts()
        finally:
            srv.stop()


def test_personalised_copies_use_verp_and_keep_the_token_out_of_the_body(tmp_path: Path) -> None:
    """The member's unsubscribe token acts alone, so it goes in the header only: a reply that
    quotes a whole post (footer included) must not hand it to everyone on the list."""
    db = tmp_path / "m.db"
    setup_team(
        db,
        ("lists", "set", "team@example.org", "personalize", "yes"),
        ("lists", "set", "team@example.org", "web_url", "https://lists.example.org"),
    )
    with RunningSink(Sink()) as sink:
        srv = Server(db, "--relay", f"127.0.0.1:{sink_port(sink)}")
        try:
            post(srv.port, message(sender="anne@example.org", message_id="verp-1@example.org"))
            sink.wait(lambda s: len(s.received) >= 3)
            by_rcpt = {m.rcpts[0]: m for m in sink.received}
            assert all(len(m.rcpts) == 1 for m in sink.received)
            bob = by_rcpt["bob@example.org"]
            assert bob.mail_from == "team-bounces+bob=example.org@example.org"
            copy = message_from_bytes(bob.data, policy=default)
            body = copy.get_content()
            assert "To unsubscribe, write to team-leave@example.org" in body
            assert "team-leave+" not in body and "/unsubscribe/" not in body
            unsubscribe = copy["List-Unsubscribe"]
            assert (
                unsubscribe.startswith("<mailto:team-leave+")
                and "<https://lists.example.org/unsubscribe/" in unsubscribe
            )
            assert copy["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            erin = message_from_bytes(by_rcpt["erin@other.example"].data, policy=default)
            assert erin["List-Unsubscribe"] != unsubscribe  # a token per member
        finally:
            srv.stop()


def test_default_outbox_is_a_maildir(tmp_path: Path) -> None:
    import mailbox

    db = tmp_path / "m.db"
    setup_team(db)
    srv = Server(db)
    try:
        post(srv.port, message(sender="anne@example.org", message_id="box-1@example.org"))
        box = mailbox.Maildir(str(tmp_path / "outbox"), create=False)
        wait_until(lambda: len(box) >= 3)
        delivered = sorted(m["Delivered-To"] for m in box)
        assert delivered == ["anne@example.org", "bob@example.org", "erin@other.example"]
        assert all(m["Return-Path"] == "<team-bounces@example.org>" for m in box)
        files = list((tmp_path / "outbox" / "new").iterdir())
        assert files and all(b"\r" not in f.read_bytes() for f in files)  # Maildir lines end in LF
        if shutil.which("s-nail"):  # a real mail client reads it as mail, not as CRLF junk
            shown = subprocess.run(
                ["s-nail", "-#", "-R", "-Y", "type 1", "-Y", "quit",
                 "-f", f"maildir://{tmp_path / 'outbox'}"],
                capture_output=True, timeout=30, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
            )  # fmt: skip
            assert shown.returncode == 0, shown.stderr
            assert b"Subject: [Team] Hello" in shown.stdout and b"\r" not in shown.stdout
    finally:
        srv.stop()


def test_sigkill_mid_fanout_then_restart_delivers_everyone(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    csv_file = tmp_path / "members.csv"
    csv_file.write_text("address\n" + "".join(f"m{i}@d{i % 5}.example\n" for i in range(2000)))
    setup_team(
        db,
        ("members", "import", "team@example.org", str(csv_file)),
        ("lists", "set", "team@example.org", "batch_size", "10"),
    )
    with RunningSink(Sink(delay=0.02)) as sink:
        relay = f"127.0.0.1:{sink_port(sink)}"
        srv = Server(db, "--relay", relay)
        post(srv.port, message(sender="anne@example.org", message_id="kill-1@example.org"))
        sink.wait(lambda s: len(s.rcpts()) >= 300)
        srv.kill()  # SIGKILL mid fan-out
        before = len(sink.rcpts())
        assert before < 2003, "the fan-out finished before the kill: slow the sink down"
        srv = Server(db, "--relay", relay)
        try:
            expected = 2003  # 2,000 imported + anne, bob, erin
            sink.wait(lambda s: len(set(s.rcpts())) >= expected, timeout=120)
            counts = Counter(sink.rcpts())
            assert len(counts) == expected
            duplicates = sum(n - 1 for n in counts.values())
            # At most the transaction each of the 4 senders had in flight (10 recipients each).
            assert duplicates <= 4 * 10, duplicates
        finally:
            srv.stop()


def test_a_display_name_cannot_borrow_someone_elses_badges(tmp_path: Path) -> None:
    """Bob writes `From: "Anne - Licensee Badge" <bob@...>`: the footer names bob's account."""
    db = tmp_path / "m.db"
    setup_team(db, ("members", "add", "team@example.org", "zed@example.org", "--name", "Zed"))
    with RunningSink(Sink()) as sink:
        srv = Server(db, "--relay", f"127.0.0.1:{sink_port(sink)}")
        try:
            forged = '"Anne - Licensee Badge" <bob@example.org>'
            post(
                srv.port, message(sender=forged, message_id="spoof@example.org"), "bob@example.org"
            )
            named = '"Anne - Licensee Badge" <zed@example.org>'
            post(
                srv.port, message(sender=named, message_id="spoof2@example.org"), "zed@example.org"
            )
            sink.wait(lambda s: len(s.received) >= 4)
            for received in sink.received:
                copy = message_from_bytes(received.data, policy=default)
                footer = copy.get_content().replace("\r\n", "\n").split("\n-- \n", 1)[1]
                author = footer.splitlines()[0]
                assert "Licensee" not in footer and copy["X-Maillist-Badges"] is None, footer
                assert author in {"bob@example.org", "Zed"}, author
                assert copy["X-Maillist-Author"] in {"bob@example.org", "zed@example.org"}
            threads = admin(db, "threads", "team@example.org").stdout
            assert "Anne - Licensee Badge" not in threads and "Zed <zed@example.org>" in threads
        finally:
            srv.stop()


@pytest.mark.parametrize("personalize", ["no", "yes"])
def test_a_copy_that_comes_back_without_loop_markers_is_discarded(
    tmp_path: Path, personalize: str
) -> None:
    """A forwarder that rebuilds the header (new Message-ID, no List-Id or X-Loop) sends bob's
    copy back to the list: its body is the one the list wrote, so it is a loop."""
    db = tmp_path / "m.db"
    setup_team(db, ("lists", "set", "team@example.org", "personalize", personalize))
    with RunningSink(Sink()) as sink:
        srv = Server(db, "--relay", f"127.0.0.1:{sink_port(sink)}")
        try:
            post(srv.port, message(sender="anne@example.org", message_id="orig@example.org"))
            sink.wait(lambda s: "bob@example.org" in s.rcpts())
            copy = next(m.data for m in sink.received if "bob@example.org" in m.rcpts)
            head, body = copy.split(b"\r\n\r\n", 1)
            kept = [
                line for line in head.split(b"\r\n")
                if not line.lower().startswith((b"list-", b"x-loop", b"message-id", b"from", b"x-maillist", b"precedence"))
            ]  # fmt: skip
            back = b"\r\n".join(
                [b"From: bob@example.org", b"Message-ID: <fwd-1@example.org>", *kept]
            )
            post(srv.port, back + b"\r\n\r\n" + body, sender="bob@example.org")
            conn = dbutil.connect(db)
            verdict = conn.execute(
                "SELECT verdict, reasons FROM messages WHERE message_id = 'fwd-1@example.org'"
            ).fetchone()
            jobs = conn.execute("SELECT COUNT(*) FROM outbound_jobs").fetchone()
            conn.close()
            assert verdict == ("discard", "loop: the body of a copy this list sent lately")
            assert jobs == (1,)  # the original post only
            # A fresh post with an ordinary body is delivered as before.
            post(srv.port, message(sender="bob@example.org", message_id="new@example.org"))
            sink.wait(lambda s: any(b"new@example.org" in m.data for m in s.received))
        finally:
            srv.stop()


def test_the_from_shows_the_accounts_name_not_what_the_sender_wrote(tmp_path: Path) -> None:
    """A member's copy names the author as an admin named them; a stranger may keep a display
    name of their own, but not one that is an address (mallory dressed as anne)."""
    db = tmp_path / "m.db"
    setup_team(db, ("lists", "set", "team@example.org", "posting", "open"))
    dressed = message(sender='"Anne - Licensee Badge, moderator" <anne@example.org>',
                      message_id="dressed@example.org")  # fmt: skip
    posing = message(sender='"anne@example.org" <mallory@evil.example>',
                     message_id="posing@evil.example")  # fmt: skip
    plain = message(sender="Zed Zebra <zed@elsewhere.example>", message_id="plain@else.example")
    with RunningSink(Sink()) as sink:
        srv = Server(db, "--relay", f"127.0.0.1:{sink_port(sink)}")
        try:
            post(srv.port, dressed)
            post(srv.port, posing, sender="mallory@evil.example")
            post(srv.port, plain, sender="zed@elsewhere.example")
            sink.wait(lambda s: len([m for m in s.received if "bob@example.org" in m.rcpts]) >= 3)
        finally:
            srv.stop()
    froms = {}
    for received in sink.received:
        if "bob@example.org" in received.rcpts:
            copy = message_from_bytes(received.data, policy=default)
            froms[str(copy["Message-ID"])] = str(copy["From"])
    assert froms["<dressed@example.org>"] == "Anne <anne@example.org>"
    assert froms["<posing@evil.example>"] == "mallory@evil.example"
    assert froms["<plain@else.example>"] == "Zed Zebra <zed@elsewhere.example>"
