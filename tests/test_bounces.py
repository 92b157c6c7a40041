"""Bounce processing over real sockets: DSNs to the list's bounce addresses are understood with
flufl.bounce, matched to the member, scored, and past the threshold delivery is disabled; a
rejection caused by the author's DMARC policy is never scored against the member."""

from __future__ import annotations

import json
import smtplib
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import dbutil
from maillist import clock
from maillist.db import Conn, open_store
from maillist.db import bounces as db_bounces
from maillist.db import lists as db_lists
from maillist.mail import bouncereport
from maillist.models import MailingList
from maillist.services import bounces, lists, members
from maillist.services.notify import Notifier
from maillist.templating import Templates
from serverutil import Server, relayed, running
from sink import RunningSink, Sink
from test_smtp_receive import admin

LIST = "team@example.org"


def dsn(member: str, status: str, diagnostic: str, mid: str) -> bytes:
    """A DSN as Postfix writes one (RFC 3464)."""
    return (
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
        f"To: team-bounces@example.org\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <{mid}@mx.example.net>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message "
        "could not be delivered.\r\n\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {member}\r\nOriginal-Recipient: rfc822;{member}\r\n"
        f"Action: failed\r\nStatus: {status}\r\nDiagnostic-Code: smtp; {diagnostic}\r\n\r\n"
        "--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        "From: anne@example.org\r\nSubject: [Team] hello\r\n\r\n--b1--\r\n"
    ).encode()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    db = tmp_path / "b.db"
    for args in (
        ("lists", "create", LIST),
        ("members", "add", LIST, "anne@example.org", "bob@example.net"),
        ("lists", "set", LIST, "bounce_threshold", "2"),
    ):
        assert admin(db, *args).returncode == 0
    srv = Server(db, "--outbox", str(tmp_path / "outbox"))
    try:
        yield srv, db
    finally:
        srv.stop()


def bounce(srv: Server, raw: bytes, rcpt: str) -> None:
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as client:
        client.sendmail("", [rcpt], raw)


def member(db: Path, address: str) -> dict[str, object]:
    listed = json.loads(admin(db, "members", "list", LIST, "--json").stdout)
    found: dict[str, object] = next(m for m in listed if m["address"] == address)
    return found


def back_a_day(db: Path) -> None:
    """As if the last bounce had come yesterday (one scored bounce per member per day)."""
    conn = dbutil.connect(db)
    with conn:
        conn.execute(
            "UPDATE subscriptions SET last_bounce_at = '2026-11-30T10:00:00.000000Z' "
            "WHERE last_bounce_at <> ''"
        )
    conn.close()


def probe_of(srv: Server, address: str) -> str:
    """The envelope sender of the latest notice to `address` (a probe address, or not)."""
    rows = srv.rows(
        "SELECT j.envelope_from FROM outbound_jobs j JOIN outbound_batches b ON b.job_id = j.id "
        "WHERE j.notice = 1 AND b.recipients = ? ORDER BY j.id DESC LIMIT 1",
        address,
    )
    return str(rows[0][0]) if rows else ""


def test_bounces_reach_the_threshold_and_only_a_bounced_probe_disables(
    site: tuple[Server, Path],
) -> None:
    """A bounce is anyone's to forge: at the threshold bob gets a probe from an address whose
    token only his copy carries, and delivery stops only when that probe bounces too."""
    srv, db = site
    verp = "team-bounces+bob=example.net@example.org"
    bounce(
        srv,
        dsn("bob@example.net", "5.1.1", "550 5.1.1 <bob@example.net>: no such user", "d1"),
        verp,
    )
    assert member(db, "bob@example.net")["bounce_score"] == 1.0
    # A second one the same day is recorded but not scored.
    bounce(srv, dsn("bob@example.net", "5.1.1", "550 5.1.1 no such user", "d2"), verp)
    assert member(db, "bob@example.net")["bounce_score"] == 1.0
    back_a_day(db)
    bounce(srv, dsn("bob@example.net", "5.1.1", "550 5.1.1 no such user", "d3"), verp)
    bob = member(db, "bob@example.net")
    assert bob["status"] == "enabled" and bob["bounce_score"] == 2.0  # the threshold: a probe
    probe = probe_of(srv, "bob@example.net")
    assert probe.startswith("team-bounces+probe.")
    [(data,)] = srv.rows("SELECT rendered FROM outbound_jobs WHERE envelope_from = ?", probe)
    assert isinstance(data, bytes | memoryview) and b"still working" in bytes(data)
    listed = json.loads(admin(db, "bounces", LIST, "--json").stdout)
    assert [(b["member"], b["kind"], b["status"], b["scored"]) for b in listed] == [
        ("bob@example.net", "hard", "5.1.1", True),
        ("bob@example.net", "hard", "5.1.1", False),
        ("bob@example.net", "hard", "5.1.1", True),
    ]
    back_a_day(db)  # more forged-looking bounces change nothing while the probe is out
    bounce(srv, dsn("bob@example.net", "5.1.1", "550 no such user", "d4"), verp)
    assert member(db, "bob@example.net")["status"] == "enabled"
    bounce(srv, dsn("bob@example.net", "5.1.1", "550 no such user", "d5"), probe)
    bob = member(db, "bob@example.net")
    assert bob["status"] == "disabled" and bob["disabled_reason"] == "bounces"
    assert member(db, "anne@example.org")["status"] == "enabled"
    assert "members.disable" in admin(db, "audit").stdout
    # bob was told, from his probe address again (the first weekly warning).
    [(notices,)] = srv.rows(
        "SELECT COUNT(*) FROM outbound_jobs j JOIN outbound_batches b ON b.job_id = j.id "
        "WHERE j.notice = 1 AND b.recipients = 'bob@example.net'"
    )
    assert notices == 2
    # Re-enabled by hand: the score starts again.
    assert admin(db, "members", "set", LIST, "bob@example.net", "status", "enabled").returncode == 0
    bob = member(db, "bob@example.net")
    assert (bob["status"], bob["bounce_score"], bob["disabled_reason"]) == ("enabled", 0.0, "")


def test_a_dmarc_rejection_is_never_scored_against_the_member(site: tuple[Server, Path]) -> None:
    srv, db = site
    verp = "team-bounces+bob=example.net@example.org"
    for n in range(3):
        back_a_day(db)
        diagnostic = (
            "550 5.7.1 Unauthenticated email from yahoo.com is not accepted due to domain's "
            "DMARC policy"
        )
        bounce(srv, dsn("bob@example.net", "5.7.1", diagnostic, f"p{n}"), verp)
    bob = member(db, "bob@example.net")
    assert bob["status"] == "enabled" and bob["bounce_score"] == 0.0
    [latest, *_] = json.loads(admin(db, "bounces", LIST, "--json").stdout)
    assert latest["kind"] == "policy" and not latest["scored"] and "DMARC" in latest["diagnostic"]


def test_without_verp_the_parsed_address_finds_the_member(site: tuple[Server, Path]) -> None:
    srv, db = site
    bounce(
        srv,
        dsn("bob@example.net", "4.2.2", "452 4.2.2 mailbox full", "s1"),
        "team-bounces@example.org",
    )
    assert member(db, "bob@example.net")["bounce_score"] == 0.5
    # A bounce for nobody on the list is recorded and changes nobody.
    bounce(
        srv,
        dsn("ghost@else.example", "5.1.1", "550 no such user", "g1"),
        "team-bounces@example.org",
    )
    [ghost, soft] = json.loads(admin(db, "bounces", LIST, "--json").stdout)
    assert ghost["member"] == "" and "ghost@else.example" in ghost["found"]
    assert soft["kind"] == "soft" and soft["member"] == "bob@example.net"
    [(verdict,)] = srv.rows("SELECT COUNT(*) FROM outbound_jobs")
    assert verdict == 0  # bounces are never redistributed nor answered


def test_refusals_at_smtp_time_count_unless_they_are_the_authors_fault(tmp_path: Path) -> None:
    """The relay refusing a member at RCPT is a bounce too; a DMARC refusal is not scored."""
    db = tmp_path / "r.db"
    for args in (
        ("lists", "create", LIST, "--posting", "open"),
        ("members", "add", LIST, "anne@example.org", "bob@example.net", "carl@example.com"),
    ):
        assert admin(db, *args).returncode == 0
    refuse = {
        "bob@example.net": "550 5.1.1 <bob@example.net>: Recipient address rejected: no such user",
        "carl@example.com": "550 5.7.1 Message rejected due to the sender's DMARC policy",
    }
    with RunningSink(Sink(refuse=refuse)) as sink:
        srv = Server(db, "--relay", f"127.0.0.1:{sink.port}")
        try:
            with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as client:
                client.sendmail(
                    "zoe@yahoo.example", [LIST],
                    b"From: zoe@yahoo.example\r\nSubject: hi\r\nMessage-ID: <r1@x>\r\n\r\nhi\r\n",
                )  # fmt: skip
            sink.wait(lambda s: "anne@example.org" in s.rcpts())
            deadline = time.monotonic() + 30
            while len(json.loads(admin(db, "bounces", LIST, "--json").stdout)) < 2:
                assert time.monotonic() < deadline, "the refusals were not recorded"
                time.sleep(0.1)
        finally:
            srv.stop()
    assert member(db, "bob@example.net")["bounce_score"] == 1.0
    assert member(db, "carl@example.com")["bounce_score"] == 0.0
    kinds = {b["member"]: (b["kind"], b["status"], b["scored"]) for b in json.loads(
        admin(db, "bounces", LIST, "--json").stdout
    )}  # fmt: skip
    assert kinds == {
        "bob@example.net": ("hard", "5.1.1", True),
        "carl@example.com": ("policy", "5.7.1", False),
    }


def test_a_disabled_member_is_probed_and_a_bounced_probe_is_recorded(
    site: tuple[Server, Path],
) -> None:
    srv, db = site
    verp = "team-bounces+bob=example.net@example.org"
    for n in range(2):
        back_a_day(db)
        bounce(srv, dsn("bob@example.net", "5.1.1", "550 5.1.1 no such user", f"q{n}"), verp)
    probe = probe_of(srv, "bob@example.net")
    assert probe.startswith("team-bounces+probe.")
    forged = probe.replace("probe.", "probe.1x")  # a token that does not verify names nobody
    bounce(srv, dsn("bob@example.net", "5.1.1", "550 no such user", "p0"), forged)
    assert member(db, "bob@example.net")["status"] == "enabled"
    bounce(srv, dsn("bob@example.net", "5.1.1", "550 no such user", "p1"), probe)
    assert member(db, "bob@example.net")["status"] == "disabled"
    # The notice that says so is the first warning, sent from the probe address again.
    [(data,)] = srv.rows(
        "SELECT j.rendered FROM outbound_jobs j WHERE j.notice = 1 ORDER BY j.id DESC LIMIT 1"
    )
    assert isinstance(data, bytes | memoryview) and b"delivery to you is paused" in bytes(data)
    assert probe_of(srv, "bob@example.net") == probe
    bounce(srv, dsn("bob@example.net", "5.1.1", "550 no such user", "p2"), probe)
    [(bounced, warnings)] = srv.rows(
        "SELECT probe_bounced, warnings_sent FROM subscriptions WHERE status = 'disabled'"
    )
    assert (bounced, warnings) == (1, 1)
    latest = json.loads(admin(db, "bounces", LIST, "--json").stdout)[0]
    assert (latest["member"], latest["diagnostic"], latest["scored"]) == (
        "bob@example.net",
        "probe",
        False,
    )


def test_a_returned_personalised_copy_names_its_member_by_token(tmp_path: Path) -> None:
    """No VERP, no address the parser can find: the copy's own List-Unsubscribe token does."""
    db = tmp_path / "t.db"
    for args in (
        ("lists", "create", LIST),
        ("members", "add", LIST, "anne@example.org", "bob@example.net"),
        ("lists", "set", LIST, "personalize", "yes"),
    ):
        assert admin(db, *args).returncode == 0
    received = relayed(
        db, "anne@example.org", [LIST],
        b"From: anne@example.org\r\nTo: team@example.org\r\nSubject: hi\r\n"
        b"Message-ID: <tok1@example.org>\r\n\r\nHello.\r\n",
        lambda s: "bob@example.net" in s.rcpts(),
    )  # fmt: skip
    copy = next(r.data for r in received if "bob@example.net" in r.rcpts)
    head = copy.split(b"\r\n\r\n", 1)[0].decode()
    returned = (
        "From: MAILER-DAEMON@mx.example.net\r\nTo: team-bounces@example.org\r\n"
        "Subject: failure\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nThe mailbox is gone.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        "Final-Recipient: rfc822; b1234@internal.example.net\r\nAction: failed\r\n"
        "Status: 5.1.1\r\n\r\n"
        f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\n{head}\r\n\r\n--b--\r\n"
    )
    with running(db) as srv:
        bounce(srv, returned.encode(), "team-bounces@example.org")
    bob = member(db, "bob@example.net")
    assert bob["bounce_score"] == 1.0, admin(db, "bounces", LIST).stdout


def a_bounce_row(conn: Conn, now: datetime) -> tuple[MailingList, int]:
    """The list, and a stored bounce the notices can name as their cause."""
    mlist = db_lists.by_address(conn, LIST)
    assert mlist is not None
    row = conn.execute(
        "INSERT INTO messages (list_id, kind, message_id, received_at) "
        "VALUES (?, 'bounces', 'b@x', ?) RETURNING id",
        (mlist.id, clock.iso(now)),
    ).fetchone()[0]
    return mlist, int(row)


async def test_warnings_then_re_enabled_or_removed(tmp_path: Path) -> None:
    """The weekly round on an injected clock: a probe that does not bounce enables delivery a
    week on; a member whose probes keep bouncing is removed after the list's warnings (3)."""
    store = await open_store(dbutil.location(tmp_path / "w.db"), create=True)
    try:
        await lists.create(store, LIST, actor="test")
        await members.add(store, LIST, ["anne@example.org", "bob@example.net"], actor="test")
        notifier = Notifier(Templates())
        now = clock.now()

        def bouncing(conn: Conn) -> tuple[MailingList, int]:
            mlist, row = a_bounce_row(conn, now)
            for address in ("anne@example.org", "bob@example.net"):
                for _ in range(5):  # five hard refusals on five days: a probe
                    conn.execute("UPDATE subscriptions SET last_bounce_at = ''")
                    bounces.refused(conn, mlist, row, address, "550 5.1.1 no such user", notifier)
                # ... which bounces: disabled, and the first warning
                tag = bounces.probe_address(conn, mlist, address).split("+")[1].split("@")[0]
                report = bouncereport.Report((address,), "hard", "5.1.1")
                bounces.process(conn, mlist, row, report, tag, notifier)
            bob = conn.execute("SELECT id FROM people WHERE address = 'bob@example.net'")
            return mlist, int(bob.fetchone()[0])

        mlist, bob_id = await store.write(bouncing)

        async def week(days: int) -> list[str]:
            def round_(conn: Conn) -> list[str]:
                db_bounces.probe_bounced(conn, mlist.id, bob_id)  # bob's probes bounce
                return bounces.review(conn, mlist, notifier, now + timedelta(days=days))

            return await store.write(round_)

        assert await week(3) == []  # less than a week since the first warning
        assert await week(8) == ["enabled anne@example.org", "warned bob@example.net"]
        assert await week(16) == ["warned bob@example.net"]  # his third warning: the last
        assert await week(24) == ["removed bob@example.net"]

        def results(conn: Conn) -> tuple[list[Any], list[Any], list[str]]:
            sent = conn.execute(
                "SELECT b.recipients, j.envelope_from, j.rendered FROM outbound_jobs j "
                "JOIN outbound_batches b ON b.job_id = j.id WHERE j.notice = 1 ORDER BY j.id"
            ).fetchall()
            status = conn.execute(
                "SELECT p.address, s.status, s.bounce_score FROM subscriptions s "
                "JOIN people p ON p.id = s.person_id"
            ).fetchall()
            return (
                sent,
                status,
                [r[0] for r in conn.execute("SELECT action FROM audit_log ORDER BY id")],
            )

        sent, status, audit = await store.read(results)
        assert status == [("anne@example.org", "enabled", 0.0)]
        # Each: the probe at the threshold, then its warnings (bob's three).
        assert [to for to, _, _ in sent] == ["anne@example.org"] * 2 + ["bob@example.net"] * 4
        assert all(frm.startswith("team-bounces+probe.") for _, frm, _ in sent)
        assert b"This is the last warning" in sent[-1][2]
        assert "members.enable" in audit and "members.remove" in audit
    finally:
        await store.close()


async def test_forged_bounces_alone_never_disable_a_member(tmp_path: Path) -> None:
    """Five forged DSNs on five dates reach the threshold; the probe they prompt goes to the
    real member and does not bounce, so three days on the score starts again."""
    store = await open_store(dbutil.location(tmp_path / "f.db"), create=True)
    try:
        await lists.create(store, LIST, actor="test")
        await members.add(store, LIST, ["bob@example.net"], actor="test")
        notifier = Notifier(Templates())
        now = clock.now()

        def forging(conn: Conn) -> MailingList:
            mlist, row = a_bounce_row(conn, now)
            forged = bouncereport.Report(("bob@example.net",), "hard", "5.1.1")
            for _ in range(5):
                conn.execute("UPDATE subscriptions SET last_bounce_at = ''")
                bounces.process(conn, mlist, row, forged, "bob=example.net", notifier)
            return mlist

        mlist = await store.write(forging)

        def later(conn: Conn) -> None:
            assert bounces.review(conn, mlist, notifier, now + timedelta(days=1)) == []
            state = conn.execute("SELECT status, bounce_score FROM subscriptions").fetchone()
            assert tuple(state) == ("enabled", 5.0)
            assert bounces.review(conn, mlist, notifier, now + timedelta(days=4)) == [
                "the probe to bob@example.net came through: bounce score reset"
            ]
            state = conn.execute(
                "SELECT status, bounce_score, probe_sent_at FROM subscriptions"
            ).fetchone()
            assert tuple(state) == ("enabled", 0.0, "")

        await store.write(later)
    finally:
        await store.close()
