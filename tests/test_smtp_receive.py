"""`maillist serve` over real sockets: recipients, storage, duplicates, policy, LMTP, size, durability."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import dbutil
from conftest import CLI_TIMEOUT, clean_env
from serverutil import Raw, Server, message, running


def admin(db: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "maillist", "--db", dbutil.location(db), *args],
        capture_output=True, text=True, timeout=CLI_TIMEOUT, env=clean_env(), check=False,
    )  # fmt: skip


def seed(db: Path) -> None:
    for args in (
        ("lists", "create", "team@example.org", "--name", "Team"),
        ("lists", "create", "open@example.org", "--posting", "open"),
        ("lists", "create", "mod@example.org", "--posting", "moderated"),
        ("lists", "create", "small@example.org", "--posting", "open"),
        ("lists", "set", "small@example.org", "max_message_size", "4K"),
        ("members", "add", "team@example.org", "anne@example.org", "--name", "Anne"),
        ("members", "add", "mod@example.org", "anne@example.org"),
        ("badges", "grant", "anne@example.org", "Licensee Badge"),
    ):
        result = admin(db, *args)
        assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("smtp") / "maillist.db"
    seed(db)
    with running(db) as srv:
        yield srv


def post(
    server: Server, raw: bytes, rcpts: list[str], sender: str = "anne@example.org"
) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        return client.sendmail(sender, rcpts, raw)


def verdict(server: Server, message_id: str, kind: str = "post") -> list[tuple[object, ...]]:
    return server.rows(
        "SELECT verdict, reasons FROM messages WHERE message_id = ? AND kind = ?", message_id, kind
    )


ACCEPTED = [
    "team@example.org",
    "TEAM@EXAMPLE.ORG",
    "team-request@example.org",
    "Team-Owner@example.org",
    "team-join@example.org",
    "team-leave@example.org",
    "team-bounces@example.org",
    "team-bounces+anne=example.org@example.org",
    "team-confirm+abc123@example.org",
]
REFUSED = [
    "nobody@example.org",
    "team@example.net",
    "someone@gmail.com",
    "team+tag@example.org",
    "team-confirm@example.org",
    "team-request+x@example.org",
    "-request@example.org",
    "not an address",
]


@pytest.mark.parametrize("rcpt", ACCEPTED)
def test_list_and_sub_addresses_are_accepted(server: Server, rcpt: str) -> None:
    raw = Raw(server.port)
    assert raw.reply().startswith(b"220")
    assert raw.cmd(b"EHLO test").startswith(b"250")
    assert raw.cmd(b"MAIL FROM:<anne@example.org>").startswith(b"250")
    assert raw.cmd(f"RCPT TO:<{rcpt}>".encode()).startswith(b"250 2.1.5"), rcpt
    raw.close()


@pytest.mark.parametrize("rcpt", REFUSED)
def test_other_recipients_get_550_5_1_1(server: Server, rcpt: str) -> None:
    raw = Raw(server.port)
    raw.reply()
    raw.cmd(b"EHLO test")
    raw.cmd(b"MAIL FROM:<anne@example.org>")
    reply = raw.cmd(f"RCPT TO:<{rcpt}>".encode())
    assert reply.startswith(b"550 5.1.1") or reply.startswith(b"553"), (rcpt, reply)
    raw.close()


def test_member_post_is_stored_raw_and_accepted(server: Server) -> None:
    raw = message(message_id="store-1@example.org", extra="X-Custom:  kept   as is")
    assert post(server, raw, ["team@example.org"]) == {}
    rows = server.rows(
        "SELECT raw, verdict, sender, sender_name, subject FROM messages WHERE message_id = ?",
        "store-1@example.org",
    )
    assert rows == [(raw, "accept", "anne@example.org", "", "Hello")]
    jobs = server.rows(
        "SELECT COUNT(*) FROM outbound_jobs j JOIN messages m ON m.id = j.message_id "
        "WHERE m.message_id = 'store-1@example.org'"
    )
    assert jobs == [(1,)]


def test_duplicate_is_stored_and_acted_on_once(server: Server) -> None:
    raw = message(message_id="dup-1@example.org")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        client.ehlo()
        client.mail("anne@example.org")
        client.rcpt("team@example.org")
        first = client.data(raw)
        client.mail("anne@example.org")
        client.rcpt("team@example.org")
        second = client.data(raw)
    assert first[0] == second[0] == 250
    assert b"duplicate" in second[1]
    assert server.rows("SELECT COUNT(*) FROM messages WHERE message_id = 'dup-1@example.org'") == [
        (1,)
    ]
    assert server.rows(
        "SELECT COUNT(*) FROM outbound_jobs j JOIN messages m ON m.id = j.message_id "
        "WHERE m.message_id = 'dup-1@example.org'"
    ) == [(1,)]


def test_missing_message_id_is_minted_and_shown(server: Server) -> None:
    raw = message(message_id=None, subject="No id")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        client.ehlo()
        client.mail("anne@example.org")
        client.rcpt("team@example.org")
        code, text = client.data(raw)
    assert code == 250
    minted = text.decode().split("<", 1)[1].split(">", 1)[0]
    assert minted.endswith("@example.org")
    assert server.rows("SELECT raw FROM messages WHERE message_id = ?", minted) == [(raw,)]
    shown = admin(server.db, "messages", "show", minted)
    assert shown.returncode == 0 and "No id" in shown.stdout


@pytest.mark.parametrize(
    ("rcpt", "kind"),
    [
        ("team-request@example.org", "request"),
        ("team-owner@example.org", "owner"),
        ("team-join@example.org", "join"),
        ("team-leave@example.org", "leave"),
        ("team-bounces+anne=example.org@example.org", "bounces"),
        ("team-confirm+tok3n@example.org", "confirm"),
    ],
)
def test_sub_address_mail_is_stored_and_handled(server: Server, rcpt: str, kind: str) -> None:
    """Each sub-address's handler is tested in test_requests.py; here: stored, acted on once,
    with its outcome shown by `messages show`."""
    mid = f"sub-{kind}@example.org"
    assert post(server, message(message_id=mid, subject="subscribe"), [rcpt]) == {}
    [(state, reasons)] = verdict(server, mid, kind)
    assert state in {"accept", "discard"} and reasons, (state, reasons)
    shown = admin(server.db, "messages", "show", mid)
    assert str(reasons) in shown.stdout and f"kind           {kind}" in shown.stdout


POLICY = [
    ("team@example.org", "stranger@example.net", "", "hold", "non-member"),
    ("open@example.org", "stranger@example.net", "", "accept", ""),
    ("mod@example.org", "anne@example.org", "", "hold", "moderated"),
    (
        "team@example.org",
        "anne@example.org",
        "List-Id: Team <team.example.org>",
        "discard",
        "List-Id",
    ),
    ("team@example.org", "anne@example.org", "X-Loop: team@example.org", "discard", "X-Loop"),
    (
        "team@example.org",
        "anne@example.org",
        "Auto-Submitted: auto-replied",
        "discard",
        "Auto-Submitted",
    ),
    ("team@example.org", "anne@example.org", "Auto-Submitted: no", "accept", ""),
    # Real people's mail through another list or a gateway carries these: a moderator decides.
    ("team@example.org", "anne@example.org", "Precedence: bulk", "hold", "Precedence: bulk"),
    ("open@example.org", "anne@example.org", "Precedence: list", "hold", "Precedence: list"),
    ("team@example.org", "anne@example.org", "Precedence: junk", "discard", "Precedence"),
    ("team@example.org", "anne@example.org", "X-Autoreply: yes", "discard", "auto-reply"),
    (
        "team@example.org",
        "anne@example.org",
        "Precedence: bulk\r\nAuto-Submitted: auto-replied",
        "discard",
        "Auto-Submitted",
    ),
]


@pytest.mark.parametrize(("rcpt", "sender", "extra", "expected", "why"), POLICY)
def test_policy(
    server: Server, rcpt: str, sender: str, extra: str, expected: str, why: str
) -> None:
    mid = f"policy-{abs(hash((rcpt, sender, extra)))}@example.org"
    assert post(server, message(sender=sender, message_id=mid, extra=extra), [rcpt], sender) == {}
    [(state, reasons)] = verdict(server, mid)
    assert state == expected and why in str(reasons)


# CVE-2023-27043: From headers that parseaddr misreads must never make a stranger look like anne.
SPOOFS = [
    "anne@example.org <mallory@evil.example>",
    '"anne@example.org" <mallory@evil.example>',
    "anne@example.org)<mallory@evil.example>",
    "mallory@evil.example, anne@example.org",
    "anne@example.org, mallory@evil.example",
    "<anne@example.org>mallory@evil.example",
    "anne@example.org@evil.example",
    '"anne@example.org"@evil.example',
    "=?utf-8?q?anne=40example=2Eorg?= <mallory@evil.example>",
    "anne@example.org (mallory@evil.example",
]


@pytest.mark.parametrize("from_header", SPOOFS)
def test_spoofed_from_never_posts_as_a_member(server: Server, from_header: str) -> None:
    mid = f"spoof-{abs(hash(from_header))}@example.org"
    raw = message(sender=from_header, message_id=mid)
    assert post(server, raw, ["team@example.org"], "mallory@evil.example") == {}
    [(state, reasons)] = verdict(server, mid)
    assert state == "hold", (from_header, reasons)
    [(sender,)] = server.rows("SELECT sender FROM messages WHERE message_id = ?", mid)
    assert sender != "anne@example.org"


def test_moderation_cycle(server: Server) -> None:
    for n in (1, 2, 3):
        raw = message(
            sender="stranger@example.net", message_id=f"held-{n}@example.org", subject=f"Held {n}"
        )
        post(server, raw, ["team@example.org"], "stranger@example.net")
    listing = admin(server.db, "moderation", "list", "team@example.org", "--json")
    held = {h["message_id"]: h for h in json.loads(listing.stdout)}
    assert {"held-1@example.org", "held-2@example.org", "held-3@example.org"} <= held.keys()
    first = held["held-1@example.org"]
    assert first["sender"] == "stranger@example.net" and first["subject"] == "Held 1"
    assert "non-member" in first["reason"] and first["date"]
    assert admin(server.db, "moderation", "approve", str(first["id"])).returncode == 0
    rejected = admin(
        server.db,
        "moderation",
        "reject",
        str(held["held-2@example.org"]["id"]),
        "--reason",
        "off topic",
    )
    assert rejected.returncode == 0
    assert (
        admin(server.db, "moderation", "discard", str(held["held-3@example.org"]["id"])).returncode
        == 0
    )
    assert verdict(server, "held-1@example.org")[0][0] == "approved"
    assert verdict(server, "held-2@example.org")[0][0] == "rejected"
    assert verdict(server, "held-3@example.org")[0][0] == "discarded"
    # Approval queues the post exactly as a direct accept does: one fan-out job.
    assert server.rows(
        "SELECT COUNT(*) FROM outbound_jobs j JOIN messages m ON m.id = j.message_id "
        "WHERE m.message_id = 'held-1@example.org'"
    ) == [(1,)]
    again = admin(server.db, "moderation", "approve", str(first["id"]))
    assert again.returncode == 1 and "already approved" in again.stderr
    missing = admin(server.db, "moderation", "approve", "999999")
    assert missing.returncode == 1 and "no such held message" in missing.stderr
    remaining = json.loads(
        admin(server.db, "moderation", "list", "team@example.org", "--json").stdout
    )
    assert not {"held-1@example.org", "held-2@example.org", "held-3@example.org"} & {
        h["message_id"] for h in remaining
    }


def test_size_limit_per_list(server: Server) -> None:
    raw = Raw(server.port)
    raw.reply()
    ehlo = raw.cmd(b"EHLO test")
    assert b"250-SIZE 10485760" in ehlo  # the largest any list takes
    raw.cmd(b"MAIL FROM:<anne@example.org> SIZE=9000")
    assert raw.cmd(b"RCPT TO:<small@example.org>").startswith(b"552 5.3.4")
    raw.cmd(b"RSET")
    raw.cmd(b"MAIL FROM:<anne@example.org>")
    assert raw.cmd(b"RCPT TO:<small@example.org>").startswith(b"250")
    assert raw.cmd(b"DATA").startswith(b"354")
    big = message(message_id="big-1@example.org", body=("x" * 70 + "\r\n") * 200)
    raw.send(big + b".\r\n")
    assert raw.reply().startswith(b"552 5.3.4")
    # The session goes on: a message within the limit is accepted afterwards.
    raw.cmd(b"MAIL FROM:<anne@example.org>")
    raw.cmd(b"RCPT TO:<small@example.org>")
    raw.cmd(b"DATA")
    raw.send(message(message_id="small-1@example.org") + b".\r\n")
    assert raw.reply().startswith(b"250")
    raw.close()
    assert server.rows("SELECT COUNT(*) FROM messages WHERE message_id = 'big-1@example.org'") == [
        (0,)
    ]


def test_lmtp_one_reply_per_recipient(tmp_path: Path) -> None:
    db = tmp_path / "lmtp.db"
    seed(db)
    with running(db, "--lmtp") as srv:
        raw = Raw(srv.port)
        assert raw.reply().startswith(b"220")
        assert raw.cmd(b"EHLO x").startswith(b"500")  # LMTP speaks LHLO only
        assert raw.cmd(b"LHLO test").startswith(b"250")
        raw.cmd(b"MAIL FROM:<anne@example.org>")
        assert raw.cmd(b"RCPT TO:<team@example.org>").startswith(b"250")
        assert raw.cmd(b"RCPT TO:<ghost@example.org>").startswith(b"550 5.1.1")
        assert raw.cmd(b"RCPT TO:<open@example.org>").startswith(b"250")
        assert raw.cmd(b"RCPT TO:<team-request@example.org>").startswith(b"250")
        assert raw.cmd(b"DATA").startswith(b"354")
        raw.send(message(message_id="lmtp-1@example.org") + b".\r\n")
        replies = [raw.line(), raw.line(), raw.line()]
        assert all(r.startswith(b"250 2.0.0") for r in replies), replies
        raw.close()
        rows = srv.rows(
            "SELECT kind, verdict FROM messages WHERE message_id = 'lmtp-1@example.org' ORDER BY id"
        )
        assert sorted(rows) == [("post", "accept"), ("post", "accept"), ("request", "accept")]
        with smtplib.LMTP("127.0.0.1", srv.port, timeout=10) as client:
            assert (
                client.sendmail(
                    "anne@example.org",
                    ["team@example.org"],
                    message(message_id="lmtp-2@example.org"),
                )
                == {}
            )


def test_250_only_after_commit_survives_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "durable.db"
    seed(db)
    srv = Server(db)
    try:
        ids = [f"durable-{n}@example.org" for n in range(5)]
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as client:
            for mid in ids:
                client.sendmail("anne@example.org", ["team@example.org"], message(message_id=mid))
            srv.kill()  # SIGKILL straight after the last 250: no chance to flush anything
    finally:
        srv.kill()
    stored = srv.rows(
        "SELECT message_id, verdict FROM messages WHERE message_id LIKE 'durable-%' ORDER BY message_id"
    )
    assert stored == [(mid, "accept") for mid in ids]
    assert srv.rows("SELECT COUNT(*) FROM outbound_jobs") == [(5,)]


def test_sigterm_finishes_the_open_session(tmp_path: Path) -> None:
    db = tmp_path / "graceful.db"
    seed(db)
    srv = Server(db)
    raw = Raw(srv.port)
    raw.reply()
    raw.cmd(b"EHLO test")
    raw.cmd(b"MAIL FROM:<anne@example.org>")
    raw.cmd(b"RCPT TO:<team@example.org>")
    srv.proc.terminate()  # SIGTERM mid-transaction
    assert raw.cmd(b"DATA").startswith(b"354")
    raw.send(message(message_id="graceful-1@example.org") + b".\r\n")
    assert raw.reply().startswith(b"250 2.0.0")
    assert raw.reply().startswith(b"421 4.3.2")  # stored and answered: now told the server stops
    raw.close()
    assert srv.proc.wait(timeout=20) == 0
    srv.stop()
    assert srv.rows("SELECT verdict FROM messages WHERE message_id = 'graceful-1@example.org'") == [
        ("accept",)
    ]
