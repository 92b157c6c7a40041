"""Each list option validates its value; anything that could reach a mail header is one line."""

from __future__ import annotations

import pytest

from maillist.errors import BadOption
from maillist.listoptions import OPTIONS, parse_option


@pytest.mark.parametrize(
    ("option", "value", "stored"),
    [
        ("posting", "Open", "open"),
        ("max_message_size", "512k", 512 * 1024),
        ("max_message_size", "20000", 20000),
        ("personalize", "off", False),
        ("reply_to", "author", "author"),
        ("reply_to", "Help@Example.ORG", "Help@example.org"),
        ("web_url", "https://lists.example.org/", "https://lists.example.org"),
        ("web_url", "", ""),
        ("subject_prefix", "[team] ", "[team]"),
        ("subject-prefix", "", ""),
    ],
)
def test_valid(option: str, value: str, stored: object) -> None:
    assert parse_option(option, value)[1] == stored


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("posting", "anyone"),
        ("max_message_size", "0"),
        ("max_message_size", "-5"),
        ("personalize", "perhaps"),
        ("name", ""),
        ("name", "x" * 101),
        ("description", "two\nlines"),
        ("web_url", "javascript:alert(1)"),
        ("nonsense", "1"),
    ],
)
def test_invalid(option: str, value: str) -> None:
    with pytest.raises(BadOption):
        parse_option(option, value)


def test_every_option_has_help() -> None:
    assert all(o.help for o in OPTIONS.values())
