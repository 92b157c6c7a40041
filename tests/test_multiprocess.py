"""Several `maillist serve` processes on one PostgreSQL database work as one site.

Three servers share a database and a relay (a recording sink). One post to a 5,000-member list
is fanned out by all three; one of them is killed with SIGKILL in the middle. Every member gets
the post, and the copies sent twice are at most the batch the killed sender had in flight (its
other claimed batches are taken over once their lease runs out). Then: the same Message-ID sent
to two processes at the same moment is stored once, and replies sent to different processes
thread under one parent."""

from __future__ import annotations

import collections
import csv
import smtplib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from maillist.db.postgres import connect
from maillist.services import deliveries
from pgserver import PgCluster
from serverutil import Server, message, wait_for
from sink import RunningSink, Sink
from test_bounces import dsn
from test_smtp_receive import admin

MEMBERS = 5_000
BATCH = 25  # recipients per batch: 200 batches, so every sender holds claims when one dies
LEASE = "5"


@pytest.fixture
def site(tmp_path: Path, pg_cluster: PgCluster) -> Iterator[tuple[str, Sink]]:
    url = pg_cluster.new_database()
    members = tmp_path / "members.csv"
    with members.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["address", "name", "role"])
        writer.writerows(
            [f"m{i}@example{i % 41}.org", f"Member {i}", "member"] for i in range(MEMBERS)
        )
    for args in (
        ("lists", "create", "big@example.org", "--posting", "open"),
        ("lists", "set", "big@example.org", "batch_size", str(BATCH)),
        ("members", "import", "big@example.org", str(members)),
    ):
        done = admin(url, *args)
        assert done.returncode == 0, (args, done.stderr)
    with RunningSink(Sink(delay=0.02)) as sink:
        yield url, sink


def start(url: str, sink: Sink, tmp_path: Path, n: int) -> Server:
    return Server(
        url, "--relay", f"127.0.0.1:{sink.port}", "--connections", "1", "--lease", LEASE,
        log=tmp_path / f"serve-{n}.log",
    )  # fmt: skip


def test_three_processes_one_killed_mid_fan_out(site: tuple[str, Sink], tmp_path: Path) -> None:
    url, sink = site
    servers = [start(url, sink, tmp_path, n) for n in range(3)]
    try:
        with smtplib.SMTP("127.0.0.1", servers[0].port, timeout=10) as client:
            client.sendmail("m1@example1.org", ["big@example.org"], message("m1@example1.org"))
        sink.wait(lambda s: len(s.received) >= 30, timeout=60)
        victim = servers[1]
        victim.kill()  # SIGKILL: no goodbye, its claims and its transaction die with it
        assert victim.proc.returncode == -9
        sink.wait(lambda s: len(set(s.rcpts())) >= MEMBERS, timeout=120)
        got = collections.Counter(sink.rcpts())
        assert set(got) == {f"m{i}@example{i % 41}.org" for i in range(MEMBERS)}
        twice = sum(n - 1 for n in got.values())
        assert twice <= BATCH, f"{twice} copies sent twice: more than the killed sender's batch"
        # Every batch is recorded as sent in the end, by the two that live.
        wait_for(
            lambda: servers[0].rows(
                "SELECT COUNT(*) FROM outbound_batches WHERE state <> 'sent'"
            ) == [(0,)],
            "every batch recorded as sent", timeout=60,
        )  # fmt: skip
    finally:
        for server in servers:
            server.stop()


def test_the_same_post_at_two_processes_at_once_is_stored_once(
    site: tuple[str, Sink], tmp_path: Path
) -> None:
    url, sink = site
    servers = [start(url, sink, tmp_path, n) for n in range(2)]
    try:
        barrier = threading.Barrier(4, timeout=10)
        replies: list[object] = []

        def send(server: Server, mid: str, extra: str = "") -> None:
            raw = message("m1@example1.org", message_id=mid, subject="Jam")
            if extra:
                raw = raw.replace(b"\r\n\r\n", f"\r\n{extra}\r\n\r\n".encode(), 1)
            with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
                barrier.wait()
                replies.append(client.sendmail("m1@example1.org", ["big@example.org"], raw))

        threads = [
            threading.Thread(target=send, args=(servers[0], "same@x")),
            threading.Thread(target=send, args=(servers[1], "same@x")),
            # Two replies to a parent nobody has yet, at two processes: one placeholder.
            threading.Thread(target=send, args=(servers[0], "ra@x", "In-Reply-To: <root@x>")),
            threading.Thread(target=send, args=(servers[1], "rb@x", "In-Reply-To: <root@x>")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert replies == [{}, {}, {}, {}]  # all four accepted (a duplicate is accepted, once)
        rows = servers[0].rows(
            "SELECT message_id, COUNT(*) FROM messages WHERE claimed = 1 GROUP BY message_id "
            "ORDER BY message_id"
        )
        assert rows == [("ra@x", 1), ("rb@x", 1), ("root@x", 1), ("same@x", 1)]
        [(threads_of_replies,)] = servers[0].rows(
            "SELECT COUNT(DISTINCT thread_id) FROM messages WHERE message_id IN "
            "('ra@x', 'rb@x', 'root@x')"
        )
        assert threads_of_replies == 1
        [(jobs,)] = servers[0].rows(
            "SELECT COUNT(*) FROM outbound_jobs j JOIN messages m ON m.id = j.message_id "
            "WHERE m.message_id = 'same@x'"
        )
        assert jobs == 1
    finally:
        for server in servers:
            server.stop()


def test_two_claims_at_once_never_take_the_same_batch(
    site: tuple[str, Sink], tmp_path: Path
) -> None:
    """Two senders' claim transactions open at the same moment (on different connections, as
    two processes are): the second passes over the rows the first holds, without waiting."""
    url, _ = site
    first, second = connect(url), connect(url)
    try:
        first.execute(
            "INSERT INTO messages (list_id, message_id, raw, verdict) VALUES (1, 'c@x', ?, 'accept')",
            (b"x",),
        )
        first.execute(
            "INSERT INTO outbound_jobs (message_id, list_id, state, created_at) "
            "SELECT id, 1, 'expanded', 't' FROM messages WHERE message_id = 'c@x'"
        )
        first.executemany(
            "INSERT INTO outbound_batches (job_id, recipients, next_attempt_at, created_at) "
            "SELECT MAX(id), ?, '2000-01-01', 't' FROM outbound_jobs",
            [(f"r{i}@example.org",) for i in range(20)],
        )
        first.execute("BEGIN")
        second.execute("BEGIN")
        started = time.monotonic()
        mine = {b.id for b in deliveries.claim(first, 10)}
        theirs = {b.id for b in deliveries.claim(second, 10)}
        waited = time.monotonic() - started
        first.execute("COMMIT")
        second.execute("COMMIT")
    finally:
        first.close()
        second.close()
    assert len(mine) == 10 and len(theirs) == 10 and not mine & theirs
    assert waited < 2.0  # passed over, not waited for (the lock timeout is 10 s)


def test_a_server_outlives_its_database_sessions(
    site: tuple[str, Sink], tmp_path: Path, pg_cluster: PgCluster
) -> None:
    """The database drops every session of a running server (a restart, a failover, an admin's
    pg_terminate_backend): at most the transaction in flight fails (a 451 the client retries);
    the server connects again and goes on."""
    url, sink = site
    server = start(url, sink, tmp_path, 0)
    try:
        admin_conn = connect(pg_cluster.url)
        try:
            [(ended,)] = admin_conn.execute(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = ? AND pid <> pg_backend_pid()",
                (url.rsplit("/", 1)[1],),
            ).fetchall()
        finally:
            admin_conn.close()
        assert ended >= 2  # its writer and its reader
        answers = []
        for _attempt in range(3):
            with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
                try:
                    client.sendmail("m1@example1.org", ["big@example.org"],
                                    message("m1@example1.org", message_id="after@x"))  # fmt: skip
                    answers.append(250)
                    break
                except smtplib.SMTPDataError as exc:
                    answers.append(exc.smtp_code)
        assert answers[-1] == 250 and all(code == 451 for code in answers[:-1]), answers
        sink.wait(lambda s: len(set(s.rcpts())) >= MEMBERS, timeout=120)
    finally:
        server.stop()


def test_bounces_at_two_processes_at_once_score_once(
    site: tuple[str, Sink], tmp_path: Path
) -> None:
    """A member's bounce is scored once a day: two bounces for the same member reaching two
    processes at the same moment are both recorded, one of them scored (the score is read
    locked, so the second sees the first)."""
    url, sink = site
    servers = [start(url, sink, tmp_path, n) for n in range(2)]
    members = [f"m{i}@example{i % 41}.org" for i in range(1, 6)]
    try:
        for who in members:
            barrier = threading.Barrier(2, timeout=10)
            pair = [
                threading.Thread(target=_bounce, args=(servers[n], who, n, barrier)) for n in (0, 1)
            ]
            for t in pair:
                t.start()
            for t in pair:
                t.join(timeout=30)
        rows = servers[0].rows(
            "SELECT member, COUNT(*), SUM(scored) FROM bounces GROUP BY member ORDER BY member"
        )
        assert rows == [(who, 2, 1) for who in sorted(members)], rows
        scores = servers[0].rows(
            "SELECT bounce_score FROM subscriptions s JOIN people p ON p.id = s.person_id "
            "WHERE p.address IN (?, ?, ?, ?, ?)",
            *members,
        )
        assert scores == [(1.0,)] * 5
    finally:
        for server in servers:
            server.stop()


def _bounce(server: Server, who: str, n: int, barrier: threading.Barrier) -> None:
    local, domain = who.split("@")
    raw = dsn(who, "5.1.1", "550 5.1.1 no such user", f"{local}-{n}")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        barrier.wait()
        client.sendmail("", [f"big-bounces+{local}={domain}@example.org"], raw)
