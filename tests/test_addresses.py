"""Address normalisation and list-address rules, including property tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maillist.errors import BadAddress
from maillist.people.addresses import (
    normalise,
    normalise_each,
    normalise_list_address,
    split_recipient,
)

local_parts = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,20}[A-Za-z0-9]", fullmatch=True).filter(
    lambda s: ".." not in s
)
domains = st.from_regex(
    r"[A-Za-z][A-Za-z0-9-]{0,10}[A-Za-z0-9]\.(com|ORG|net|Example)", fullmatch=True
)


@given(local_parts, domains)
def test_normalise_lowercases_domain_keeps_local_and_is_idempotent(local: str, domain: str) -> None:
    address = normalise(f"{local}@{domain}")
    assert address == f"{local}@{domain.lower()}"
    assert normalise(address) == address


@given(st.lists(st.text(max_size=30), max_size=20))
def test_normalise_each_matches_normalise(texts: list[str]) -> None:
    for text, result in zip(texts, normalise_each(texts), strict=True):
        try:
            expected: str | type[BadAddress] = normalise(text)
        except BadAddress:
            expected = BadAddress
        assert result == expected or (expected is BadAddress and isinstance(result, BadAddress))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "plain",
        "a@",
        "@b.org",
        "a@@b.org",
        "Anne <anne@example.org>",
        "anne@example.org\r\nBcc: x@evil.org",
        "a\x00b@example.org",
        "x" * 250 + "@example.org",
        "a@b",
    ],
)
def test_invalid_addresses(bad: str) -> None:
    with pytest.raises(BadAddress):
        normalise(bad)


@pytest.mark.parametrize("suffix", ["request", "owner", "join", "leave", "bounces", "confirm"])
def test_list_address_may_not_look_like_a_sub_address(suffix: str) -> None:
    with pytest.raises(BadAddress, match=suffix):
        normalise_list_address(f"team-{suffix}@example.org")
    assert normalise_list_address(f"{suffix}team@example.org") == f"{suffix}team@example.org"


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        ("team@example.org", ("team@example.org", "post", "")),
        ("Team-Leave+k3x4fq2@Example.org", ("Team@example.org", "leave", "k3x4fq2")),
        ("team-confirm+abc@example.org", ("team@example.org", "confirm", "abc")),
        (
            "team-bounces+" + "a" * 60 + "=example.org@example.org",  # a long VERP tag
            ("team@example.org", "bounces", "a" * 60 + "=example.org"),
        ),
    ],
)
def test_split_recipient(recipient: str, expected: tuple[str, str, str]) -> None:
    assert split_recipient(recipient) == expected


@pytest.mark.parametrize(
    "recipient",
    [
        "team+x@example.org",
        "team-join+x@example.org",
        "team-request+x@example.org",
        "team-confirm@example.org",
        "team-leave+a b@example.org",
        "team-leave+<x>@example.org",
        "team-leave+@example.org",
    ],
)
def test_split_recipient_refuses(recipient: str) -> None:
    with pytest.raises(BadAddress):
        split_recipient(recipient)
