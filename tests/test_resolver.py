"""The resolver (TTL cache, bounded, timeouts) against a DNS server on loopback, and the pure
DMARC rules: records, organisational domains, alignment, mitigation, what a result amounts to."""

from __future__ import annotations

import time

import pytest

from dnsserver import dns_server
from maillist.mail import dmarc, render
from maillist.mail.dmarc import OrgDomains, Record
from maillist.models import Authentication, AuthResult, MailingList, Posting
from maillist.services.resolver import LookupFailed, Resolver


async def test_answers_are_cached_for_their_ttl_and_the_cache_is_bounded() -> None:
    now = [1000.0]
    with dns_server() as server:
        server.zone.publish("_dmarc.a.example", "v=DMARC1; p=reject")
        resolver = Resolver(server.address, cache_names=2, clock=lambda: now[0])
        assert await resolver.txt("_dmarc.a.example") == ("v=DMARC1; p=reject",)
        assert await resolver.txt("_DMARC.A.example.") == ("v=DMARC1; p=reject",)  # cached
        assert await resolver.txt("_dmarc.none.example") == ()  # NXDOMAIN, cached too
        assert server.zone.asked == ["_dmarc.a.example", "_dmarc.none.example"]
        now[0] += 301  # the record's TTL is 300 s
        await resolver.txt("_dmarc.a.example")
        assert server.zone.asked.count("_dmarc.a.example") == 2
        for n in range(5):
            await resolver.txt(f"n{n}.example")
        assert len(resolver._cache) == 2  # the least recently used went first


async def test_a_silent_server_is_a_lookup_failure_within_the_timeout() -> None:
    with dns_server() as server:
        server.zone.silent.add("_dmarc.slow.example")
        resolver = Resolver(server.address, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(LookupFailed):
            await resolver.txt("_dmarc.slow.example")
        assert time.monotonic() - started < 2.0
        with pytest.raises(LookupFailed):  # remembered briefly: no second wait per post
            await resolver.txt("_dmarc.slow.example")
        assert server.zone.asked.count("_dmarc.slow.example") <= 2  # dnspython may retry once


def test_dmarc_records() -> None:
    assert dmarc.parse_record(("v=DMARC1; p=reject; sp=none; adkim=s",)) == Record(
        "reject", "none", "s", "r"
    )
    assert dmarc.parse_record(("v=DMARC1; p=bogus",)) == Record("none", "none")
    assert dmarc.parse_record(("v=spf1 -all",)) is None
    assert dmarc.parse_record(("v=DMARC1; p=reject", "v=DMARC1; p=none")) is None  # two: none


def test_organisational_domains_and_alignment() -> None:
    orgs = OrgDomains()
    assert orgs.of("mail.example.co.uk") == "example.co.uk"
    assert orgs.of("a.b.example.com") == "example.com"
    assert orgs.aligned("mail.example.com", "example.com", strict=False)
    assert not orgs.aligned("mail.example.com", "example.com", strict=True)
    assert not orgs.aligned("example.co.uk", "other.co.uk", strict=False)


def test_mitigation_modes() -> None:
    assert dmarc.mitigation("auto", "reject") == "munge"
    assert dmarc.mitigation("auto", "quarantine") == "munge"
    assert dmarc.mitigation("auto", "unknown") == "munge"  # the lookup failed: fail safe
    assert dmarc.mitigation("auto", "none") == ""
    assert dmarc.mitigation("auto", "") == ""
    assert dmarc.mitigation("wrap", "") == "wrap"
    assert dmarc.mitigation("none", "reject") == ""


def test_what_a_result_amounts_to() -> None:
    assert Authentication(dmarc=AuthResult.FAIL, policy="reject").forged
    # p=none asks for no action
    assert not Authentication(dmarc=AuthResult.FAIL, policy="none").forged
    assert Authentication(dmarc=AuthResult.FAIL, policy="none").verified
    assert not Authentication(dmarc=AuthResult.TEMPERROR, policy="unknown").verified
    assert Authentication(dmarc=AuthResult.NONE).verified


def test_results_the_sender_wrote_under_the_lists_name_are_dropped() -> None:
    mlist = MailingList(
        1, "team@example.org", "Team", "", Posting.OPEN, "", 10**6, "author", False, "", ""
    )
    raw = (
        b"Authentication-Results: example.org; dmarc=pass header.from=bank.example\r\n"
        b"Authentication-Results: mx.example.net; dkim=pass header.d=x.example\r\n"
        b"From: a@x.example\r\nSubject: s\r\n\r\nbody\r\n"
    )
    fields = render.edited(raw, mlist).to_bytes().split(b"\r\n\r\n")[0]
    assert b"example.org; dmarc=pass" not in fields
    assert b"mx.example.net; dkim=pass" in fields
