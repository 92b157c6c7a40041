"""DMARC, DKIM and ARC end to end: a real server asks a DNS server on loopback (the test
publishes keys and policies there), relays to a recording sink, and the copies are checked with
dkimpy's own verifiers against the same records.

One world for the module: lists, members with badges, authors whose domains ask p=reject,
p=none, or whose DNS never answers; posts signed by their author's domain, forged, and vouched
for by a trusted host. Each test then reads what arrived."""

from __future__ import annotations

import email
import email.policy
import re
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import dkim  # type: ignore[import-untyped]
import pytest

from dnsserver import DnsServer, dns_server
from maillist.mail import signing
from serverutil import Server
from sink import RunningSink, Sink
from test_dkim import txt_of
from test_smtp_receive import admin

TEAM, WRAPPED, SOLO = "team@example.org", "wrapped@example.org", "solo@example.org"
STRICT, LENIENT = "strict@example.org", "lenient@example.org"
TRUSTING = "trusting@example.org"  # `badges unless-forged`: for sites that cannot authenticate
READER = "bob@example.net"  # every list's plain member: the copies are read from his mailbox
ANNE = "anne@strict.example"  # her domain: p=reject, and she signs with a=._domainkey
RITA = "rita@relaxed.example"  # p=none, unsigned
SAM = "sam@slow.example"  # the DNS never answers for _dmarc.slow.example
TRUSTED = "mx.example.org"


def post(
    sender: str,
    message_id: str,
    *,
    to: str = TEAM,
    subject: str = "Hello",
    extra: str = "",
    body: str = "Plain words.\r\n",
) -> bytes:
    head = (
        f"{extra}From: Someone <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{message_id}>\r\nIn-Reply-To: <root@strict.example>\r\n"
        "References: <root@strict.example>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\n"
    )
    return head.encode() + body.encode()


def author_signed(raw: bytes, key: str) -> bytes:
    field = dkim.sign(
        raw, b"a", b"strict.example", key.encode(), canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[b"from", b"to", b"subject", b"message-id", b"date"],
    )  # fmt: skip
    return bytes(field) + raw


@dataclass
class World:
    db: Path
    server: Server
    sink: Sink
    zone: DnsServer
    refused: dict[str, str]

    def copy_to_reader(self, mlist: str, message_id: str) -> bytes:
        list_id = f"<{mlist.replace('@', '.')}>"
        for received in self.sink.received:
            head = received.data.split(b"\r\n\r\n", 1)[0]
            wanted = (f"<{message_id}>".encode(), list_id.encode())
            if READER in received.rcpts and all(w in head for w in wanted):
                return received.data
        raise AssertionError(f"no copy of <{message_id}> from {mlist} for {READER}")

    def dns(self, name: bytes, timeout: float = 5) -> bytes | None:
        values = self.zone.zone.records.get(name.decode().lower().rstrip("."))
        return values[0].encode() if values else None


class Copy(EmailMessage):
    data: bytes


def parse(data: bytes) -> Copy:
    message = email.message_from_bytes(data, _class=Copy, policy=email.policy.default)
    assert isinstance(message, Copy)
    message.data = data
    return message


def field(copy: Copy, name: str) -> str:
    """A header field's value as written (the parsed value drops quotes)."""
    for line in copy.data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ").split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.lower() == name.lower().encode():
            return value.strip().decode()
    raise AssertionError(f"no {name} field")


def wanted(world: World, count: int) -> None:
    def copies(sink: Sink) -> int:
        return len([r for r in sink.received if READER in r.rcpts])

    world.sink.wait(lambda s: copies(s) >= count, timeout=60)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    db = tmp_path_factory.mktemp("dmarc") / "d.db"
    people = ((ANNE, "Anne Author"), (RITA, "Rita Relaxed"), (SAM, "Sam Slow"), (READER, "Bob"))
    commands: list[tuple[str, ...]] = []
    for mlist in (TEAM, WRAPPED, SOLO, STRICT, LENIENT, TRUSTING):
        commands.append(("lists", "create", mlist, "--name", mlist.split("@")[0].title()))
        commands += [("members", "add", mlist, a, "--name", n) for a, n in people]
    commands += [
        ("lists", "set", WRAPPED, "dmarc", "wrap"),
        ("lists", "set", SOLO, "personalize", "yes"),
        ("lists", "set", STRICT, "unauthenticated", "reject"),
        ("lists", "set", LENIENT, "unauthenticated", "accept"),
        ("lists", "set", TRUSTING, "badges", "unless-forged"),
        ("badges", "grant", ANNE, "Licensee Badge"),
        ("badges", "grant", RITA, "Training Badge"),
        ("badges", "grant", SAM, "Training Badge"),
    ]
    for args in commands:
        done = admin(db, *args)
        assert done.returncode == 0, (args, done.stderr)
    made = admin(db, "dkim", "keygen", "example.org")
    assert made.returncode == 0, made.stderr
    author_key, author_txt = signing.new_key()
    with dns_server() as zone, RunningSink(Sink()) as sink:
        zone.zone.publish("maillist._domainkey.example.org", txt_of(made.stdout).decode())
        zone.zone.publish("a._domainkey.strict.example", author_txt)
        zone.zone.publish(
            "_dmarc.strict.example", "v=DMARC1; p=reject; rua=mailto:d@strict.example"
        )
        zone.zone.publish("_dmarc.relaxed.example", "v=DMARC1; p=none")
        zone.zone.silent.add("_dmarc.slow.example")
        server = Server(
            db, "--relay", f"127.0.0.1:{sink.port}", "--dns", zone.address,
            "--trusted-authserv", TRUSTED,
        )  # fmt: skip
        world = World(db, server, sink, zone, {})
        try:
            signed = author_signed(post(ANNE, "signed@strict.example"), author_key)
            forged_ar = (
                f"Authentication-Results: {TRUSTED}; dmarc=pass header.from=strict.example\r\n"
            )
            other_ar = (
                "Authentication-Results: evil.example; dmarc=pass header.from=strict.example\r\n"
            )
            with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
                client.sendmail(ANNE, [TEAM, WRAPPED, SOLO], signed)
                client.sendmail(RITA, [TEAM], post(RITA, "relaxed@relaxed.example"))
                client.sendmail(RITA, [TRUSTING], post(RITA, "trusted@relaxed.example"))
                client.sendmail(SAM, [TEAM], post(SAM, "slow@slow.example"))
                client.sendmail(ANNE, [TEAM], post(ANNE, "forged@strict.example"))
                tampered = signed.replace(b"Plain words.", b"Send money.").replace(
                    b"signed@strict", b"tampered@strict"
                )
                client.sendmail(ANNE, [TEAM], tampered)
                client.sendmail(ANNE, [TEAM], post(ANNE, "vouched@strict.example", extra=forged_ar))
                client.sendmail(
                    ANNE, [TEAM], post(ANNE, "unvouched@strict.example", extra=other_ar)
                )
                client.sendmail(ANNE, [LENIENT], post(ANNE, "lenient@strict.example", to=LENIENT))
                try:
                    client.sendmail(ANNE, [STRICT], post(ANNE, "refused@strict.example", to=STRICT))
                except smtplib.SMTPDataError as exc:
                    error = exc.smtp_error
                    text = error.decode() if isinstance(error, bytes) else error
                    world.refused["refused"] = f"{exc.smtp_code} {text}"
            wanted(world, 8)  # signed x3, relaxed x2, slow, vouched, lenient
            held = server.rows(
                "SELECT h.id FROM held_messages h JOIN messages m ON m.id = h.message_id "
                "WHERE m.message_id = 'forged@strict.example'"
            )
            assert len(held) == 1
            approved = admin(db, "moderation", "approve", str(held[0][0]))
            assert approved.returncode == 0, approved.stderr
            wanted(world, 9)
            yield world
        finally:
            server.stop()


def test_a_p_reject_authors_signed_post_arrives_munged_signed_and_sealed(world: World) -> None:
    data = world.copy_to_reader(TEAM, "signed@strict.example")
    copy = parse(data)
    assert field(copy, "From") == '"Anne Author via Team" <team@example.org>'
    assert copy["Reply-To"] == ANNE
    assert copy["X-Original-From"] == f"Someone <{ANNE}>"
    assert copy["In-Reply-To"] == "<root@strict.example>"
    assert copy["References"] == "<root@strict.example>"
    assert copy["X-Maillist-Badges"] == "Licensee Badge"
    assert "Anne Author - Licensee Badge" in copy.get_content()
    assert dkim.verify(data, dnsfunc=world.dns)  # d=example.org, aligned with the new From
    cv, sets, why = dkim.arc_verify(data, dnsfunc=world.dns)
    assert cv == b"pass", why
    assert (
        b"dmarc=pass" in sets[0]["aar-value"] and b"header.d=strict.example" in sets[0]["aar-value"]
    )


def test_personalised_copies_are_munged_signed_and_sealed_too(world: World) -> None:
    data = world.copy_to_reader(SOLO, "signed@strict.example")
    copy = parse(data)
    assert field(copy, "From") == '"Anne Author via Solo" <solo@example.org>'
    assert copy["X-Maillist-Badges"] == "Licensee Badge"
    assert "List-Unsubscribe-Post" in copy or "leave+" in copy["List-Unsubscribe"]
    assert dkim.verify(data, dnsfunc=world.dns)
    assert dkim.arc_verify(data, dnsfunc=world.dns)[0] == b"pass"


def test_wrap_carries_the_post_untouched_with_its_own_signature_intact(world: World) -> None:
    data = world.copy_to_reader(WRAPPED, "signed@strict.example")
    copy = parse(data)
    assert field(copy, "From") == '"Anne Author via Wrapped" <wrapped@example.org>'
    assert copy["Message-ID"] == "<signed@strict.example>"
    assert copy["In-Reply-To"] == "<root@strict.example>"
    assert copy["X-Maillist-Badges"] == "Licensee Badge"
    assert copy.get_content_type() == "multipart/mixed"
    inner, footer = list(copy.iter_parts())
    assert inner.get_content_type() == "message/rfc822"
    assert "Anne Author - Licensee Badge" in footer.get_content()
    original = data.split(b"Content-Disposition: inline\r\n\r\n", 1)[1]
    original = original[: original.index(b"--maillist-wrap-")]
    assert dkim.verify(original, dnsfunc=world.dns)  # the author's own signature still holds
    assert dkim.verify(data, dnsfunc=world.dns)
    assert dkim.arc_verify(data, dnsfunc=world.dns)[0] == b"pass"


def test_an_unsigned_post_keeps_its_from_but_wears_no_badges(world: World) -> None:
    """p=none asks receivers for nothing, so the From stays; but nothing proves Rita wrote it
    (anyone can send as rita@relaxed.example), so it wears no badges and says so."""
    copy = parse(world.copy_to_reader(TEAM, "relaxed@relaxed.example"))
    assert copy["From"] == f"Rita Relaxed <{RITA}>"  # her account's name, not "Someone"
    assert "X-Original-From" not in copy
    assert "X-Maillist-Badges" not in copy
    assert "Training Badge" not in copy.get_content()
    assert "Rita Relaxed (unverified sender" in copy.get_content()


def test_a_list_that_cannot_authenticate_lets_unforged_posts_wear_badges(world: World) -> None:
    copy = parse(world.copy_to_reader(TRUSTING, "trusted@relaxed.example"))
    assert copy["X-Maillist-Badges"] == "Training Badge"
    assert "Rita Relaxed - Training Badge" in copy.get_content()


def test_a_dns_timeout_munges_and_withholds_badges_of_an_unsigned_post(world: World) -> None:
    copy = parse(world.copy_to_reader(TEAM, "slow@slow.example"))
    assert field(copy, "From") == '"Sam Slow (unverified) via Team" <team@example.org>'
    assert "X-Maillist-Badges" not in copy
    assert "Sam Slow (unverified sender" in copy.get_content()
    shown = admin(world.db, "messages", "show", "slow@slow.example")
    assert "dmarc=temperror (p=unknown) header.from=slow.example" in shown.stdout
    assert "withheld" in shown.stdout


def test_a_forged_from_is_held_and_if_approved_goes_out_without_badges(world: World) -> None:
    held = admin(world.db, "messages", "show", "forged@strict.example")
    assert "possible forgery: strict.example publishes DMARC p=reject" in held.stdout
    assert "dkim=none; arc=none; dmarc=fail (p=reject) header.from=strict.example" in held.stdout
    copy = parse(world.copy_to_reader(TEAM, "forged@strict.example"))
    assert "X-Maillist-Badges" not in copy
    assert field(copy, "From") == '"Anne Author (unverified) via Team" <team@example.org>'
    assert "Licensee Badge" not in copy.get_content()
    assert "unverified sender" in copy.get_content()


def test_a_post_altered_after_signing_is_held(world: World) -> None:
    shown = admin(world.db, "messages", "show", "tampered@strict.example")
    assert re.search(r"^verdict +hold$", shown.stdout, re.MULTILINE), shown.stdout
    assert "dkim=fail header.d=strict.example" in shown.stdout
    assert not any(b"<tampered@strict.example>" in r.data for r in world.sink.received)


def test_only_the_trusted_hosts_results_vouch_for_a_post(world: World) -> None:
    vouched = parse(world.copy_to_reader(TEAM, "vouched@strict.example"))
    assert vouched["X-Maillist-Badges"] == "Licensee Badge"
    assert field(vouched, "From") == '"Anne Author via Team" <team@example.org>'  # still p=reject
    unvouched = admin(world.db, "messages", "show", "unvouched@strict.example")
    assert "possible forgery" in unvouched.stdout
    # The list writes its own results (and seals them); the trusted host's stay as they came.
    results = [" ".join(v.split()) for v in vouched.get_all("Authentication-Results", [])]
    assert results == [
        "example.org; dkim=none; arc=none; dmarc=pass (p=reject trusted host) "
        "header.from=strict.example",
        f"{TRUSTED}; dmarc=pass header.from=strict.example",
    ]


def test_unauthenticated_reject_and_accept(world: World) -> None:
    assert world.refused["refused"].startswith("550 5.7.1 <refused@strict.example> refused")
    copy = parse(world.copy_to_reader(LENIENT, "lenient@strict.example"))
    assert "X-Maillist-Badges" not in copy
    assert "unverified sender" in copy.get_content()


def test_lookups_are_cached(world: World) -> None:
    asked = [n for n in world.zone.zone.asked if n == "_dmarc.strict.example"]
    assert len(asked) == 1, asked  # 8 posts from strict.example: asked once (TTL 300 s)
