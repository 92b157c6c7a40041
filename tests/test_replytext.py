"""What people type, as their mail clients really send it: every decision maillist reads from a
reply (a moderator's answer, -request commands) is tested on a corpus of real replies.

tests/corpus/replies/: `snail-*` were written by s-nail 14.9 (`set quote`, Debian's default)
and `mutt-*` by Mutt 2.2 (`include=yes`), each replying to a notice as a person does; the
others copy byte for byte the shapes Thunderbird, Gmail, Outlook (plain, HTML, `-----Original
Message-----`, the `From:/Sent:` block), Apple Mail on a phone, HTML-only clients and
signatures without a space send. tests/test_requests.py also sends a real s-nail reply over
SMTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from maillist.mail import replytext

CORPUS = Path(__file__).parent / "corpus" / "replies"

# file: (the moderator's answer word, the rest of its line)
ANSWERS = {
    "snail-bottom-approve.eml": ("approve", ""),
    "mutt-bottom-reject.eml": ("reject", "off topic here"),
    "thunderbird-top-approve.eml": ("approve", ""),
    "gmail-top-discard.eml": ("discard", ""),
    "outlook-original-message-approve.eml": ("approve", ""),
    "outlook-from-sent-block-reject.eml": ("reject", "this is an advert"),
    "outlook-html-only-approve.eml": ("approve", ""),
    "apple-mail-top-approve.eml": ("approve", ""),
    "html-only-blockquote-discard.eml": ("discard", ""),
    "bare-dashes-signature-approve.eml": ("approve", ""),
}

# file: (subject, the commands read, in order)
COMMANDS = {
    "snail-bottom-commands.eml": ["set digest", "who"],
    "request-help-in-subject-and-body.eml": ["help"],  # once, not twice
    "request-commands-then-words.eml": [
        "set digest",
        "info",
        "Thanks a lot for running this list!",  # answered: not a command
    ],
    "request-gmail-top-unsubscribe.eml": ["unsubscribe"],  # not the quoted `set nomail`
}


def raw(name: str) -> bytes:
    return (CORPUS / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_the_corpus_is_all_here() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted([*ANSWERS, *COMMANDS])


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_a_moderators_answer_is_read_from_every_client(name: str) -> None:
    typed = replytext.body_lines(raw(name))
    assert replytext.answer_word(typed) == ANSWERS[name], typed
    quoted = " ".join(typed).lower()
    assert "awaits your decision" not in quoted and "wrote" not in quoted


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_commands_are_read_from_every_client(name: str) -> None:
    data = raw(name)
    subject = next(
        line.split(b":", 1)[1].strip().decode()
        for line in data.split(b"\r\n")
        if line.lower().startswith(b"subject:")
    )
    found = replytext.command_lines(subject, replytext.body_lines(data), 10)
    assert found == COMMANDS[name]
