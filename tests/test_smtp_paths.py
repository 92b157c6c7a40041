"""The fast MAIL/RCPT path parser agrees with aiosmtpd's full parser wherever it applies."""

from __future__ import annotations

import asyncio

from aiosmtpd.smtp import SMTP
from hypothesis import given
from hypothesis import strategies as st

from maillist.smtp.server import _SIMPLE_PATH, ListSMTP, ServerSettings, SessionGate

atoms = st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,8}", fullmatch=True)
labels = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,6}[A-Za-z0-9])?", fullmatch=True)
params = st.lists(st.from_regex(r"[A-Z]{1,6}(=[A-Za-z0-9]{1,6})?", fullmatch=True), max_size=3)


class _Handler:
    pass


async def _protocols() -> tuple[ListSMTP, SMTP]:
    ours = ListSMTP(_Handler(), SessionGate(1, 1), ServerSettings())
    return ours, SMTP(_Handler())


OURS, THEIRS = asyncio.run(_protocols())


@given(st.lists(atoms, min_size=1, max_size=3), st.lists(labels, min_size=1, max_size=3), params)
def test_fast_path_matches_aiosmtpd(local: list[str], domain: list[str], extra: list[str]) -> None:
    arg = f"<{'.'.join(local)}@{'.'.join(domain)}>" + "".join(" " + p for p in extra)
    assert _SIMPLE_PATH.match(arg)
    assert OURS._getaddr(arg) == SMTP._getaddr(THEIRS, arg)


@given(st.text(max_size=40))
def test_anything_else_matches_aiosmtpd(arg: str) -> None:
    try:
        expected = SMTP._getaddr(THEIRS, arg)
    except Exception:  # aiosmtpd raises IndexError on some junk; we answer it as a syntax error
        expected = (None, None)
    assert OURS._getaddr(arg) == expected


def test_trimmed_dir_finds_the_same_commands_and_auth_methods() -> None:
    from aiosmtpd.lmtp import LMTP

    from maillist.smtp.server import ListLMTP

    async def build() -> list[tuple[object, object]]:
        pairs: list[tuple[object, object]] = []
        for ours, theirs in ((ListSMTP, SMTP), (ListLMTP, LMTP)):
            a = ours(_Handler(), SessionGate(1, 1), ServerSettings())
            # Built as ours is: no AUTH mechanism (there is no submission service).
            b = theirs(_Handler(), auth_exclude_mechanism=("LOGIN", "PLAIN"))
            stock = theirs(_Handler())
            pairs.append((sorted(a._smtp_methods), sorted(b._smtp_methods)))
            pairs.append((sorted(a._auth_methods), sorted(b._auth_methods)))
            assert sorted(stock._auth_methods) == ["LOGIN", "PLAIN"]  # what we exclude
            assert a._auth_methods == {}
        return pairs

    for found, expected in asyncio.run(build()):
        assert found == expected
