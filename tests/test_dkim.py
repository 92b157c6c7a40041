"""DKIM: a key made with `maillist dkim keygen`, copies signed with it, verified with dkimpy's
own verifier against the TXT record the command printed."""

from __future__ import annotations

import re
import smtplib
import stat
from pathlib import Path

import dkim  # type: ignore[import-untyped]
import pytest

import dbutil
from serverutil import relayed, running, wait_for
from sink import RunningSink, Sink
from test_smtp_receive import admin

LIST = "team@example.org"


def txt_of(printed: str) -> bytes:
    """The TXT value from the zone-file line `dkim keygen` printed (its quoted strings joined)."""
    line = next(x for x in printed.splitlines() if "._domainkey." in x)
    return "".join(re.findall(r'"([^"]*)"', line)).encode()


def verified(data: bytes, txt: bytes) -> bool:
    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"maillist._domainkey.example.org."
        return txt

    return bool(dkim.verify(data, dnsfunc=dns))


@pytest.mark.parametrize("personalize", ["no", "yes"], ids=["shared", "personalised"])
def test_copies_are_signed_and_verify_against_the_printed_record(
    tmp_path: Path, personalize: str
) -> None:
    db = tmp_path / "d.db"
    for args in (
        ("lists", "create", LIST, "--name", "Team", "--posting", "open"),
        ("members", "add", LIST, "anne@example.org", "bob@example.net"),
        ("lists", "set", LIST, "personalize", personalize),
    ):
        assert admin(db, *args).returncode == 0
    unsigned = admin(db, "check")
    assert unsigned.returncode == 0 and "no DKIM key for example.org" in unsigned.stderr
    made = admin(db, "dkim", "keygen", "example.org")
    assert made.returncode == 0, made.stderr
    txt = txt_of(made.stdout)
    assert txt.startswith(b"v=DKIM1; k=rsa; p=")
    assert txt_of(admin(db, "dkim", "show", "example.org").stdout) == txt
    assert "no DKIM key" not in admin(db, "check").stderr
    if not dbutil.POSTGRES:  # PostgreSQL's files are its own
        assert stat.S_IMODE(db.stat().st_mode) == 0o600  # the key lives here: owner only
    received = relayed(
        db, "zoe@example.net", [LIST],
        b"From: Zoe <zoe@example.net>\r\nTo: team@example.org\r\nSubject: Signed?\r\n"
        b"Message-ID: <s1@example.net>\r\n\r\nHello, list.\r\n",
        lambda s: len(s.rcpts()) >= 2,  # the signing processes do not keep serve from exiting
    )  # fmt: skip
    for copy in received:
        assert copy.data.startswith(b"DKIM-Signature: ")
        assert b"d=example.org" in copy.data and b"s=maillist" in copy.data
        assert verified(copy.data, txt), copy.rcpts
        tampered = copy.data.replace(b"Hello, list.", b"Hello, world")
        assert not verified(tampered, txt)


def test_an_ed25519_key_adds_a_second_signature_both_verify(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    for args in (
        ("lists", "create", LIST, "--name", "Team", "--posting", "open"),
        ("members", "add", LIST, "bob@example.net"),
    ):
        assert admin(db, *args).returncode == 0
    made = admin(db, "dkim", "keygen", "example.org", "--ed25519")
    assert made.returncode == 0, made.stderr
    records = {
        line.split()[0].rstrip("."): "".join(re.findall(r'"([^"]*)"', line)).encode()
        for line in made.stdout.splitlines()
        if "._domainkey." in line
    }
    assert set(records) == {"maillist._domainkey.example.org", "maillist-ed._domainkey.example.org"}
    assert records["maillist-ed._domainkey.example.org"].startswith(b"v=DKIM1; k=ed25519; p=")
    assert admin(db, "dkim", "show", "example.org").stdout.count("._domainkey.") == 2

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return records[name.decode().rstrip(".")]

    [copy] = relayed(
        db, "zoe@example.net", [LIST],
        b"From: Zoe <zoe@example.net>\r\nTo: team@example.org\r\nSubject: Twice\r\n"
        b"Message-ID: <e1@example.net>\r\n\r\nHello.\r\n",
        lambda s: len(s.received) >= 1,
    )  # fmt: skip
    data = copy.data
    assert data.startswith(b"DKIM-Signature: v=1; a=ed25519-sha256;")
    checker = dkim.DKIM(data)
    assert checker.verify(idx=0, dnsfunc=dns) and checker.verify(idx=1, dnsfunc=dns)
    assert dkim.arc_verify(data, dnsfunc=dns)[0] == b"pass"


@pytest.mark.parametrize("personalize", ["no", "yes"], ids=["shared", "personalised"])
def test_a_copy_that_cannot_be_signed_is_never_sent_unsigned(
    tmp_path: Path, personalize: str
) -> None:
    """A list with a key whose signature cannot be made (here: the key spoilt in the database):
    nothing goes out, and `maillist queue` says why."""
    db = tmp_path / "broken.db"
    for args in (
        ("lists", "create", LIST, "--name", "Team", "--posting", "open"),
        ("members", "add", LIST, "anne@example.org"),
        ("lists", "set", LIST, "personalize", personalize),
        ("dkim", "keygen", "example.org"),
    ):
        assert admin(db, *args).returncode == 0
    conn = dbutil.connect(db)
    with conn:
        conn.execute("UPDATE dkim_keys SET private_key = 'not a key'")
    conn.close()
    with RunningSink(Sink()) as sink:
        with running(db, "--relay", f"127.0.0.1:{sink.port}") as srv:
            with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as client:
                client.sendmail("zoe@example.net", [LIST], (
                    b"From: zoe@example.net\r\nTo: team@example.org\r\nSubject: x\r\n"
                    b"Message-ID: <unsignable@example.net>\r\n\r\nHi.\r\n"))  # fmt: skip

            def says_why() -> bool:  # a fan-out job failed, or a copy's batch deferred, with why
                return (
                    "signature for example.org could not be made"
                    in admin(db, "queue", "--json").stdout
                )

            wait_for(says_why, "the queue to say why", 30)
        assert sink.received == []
