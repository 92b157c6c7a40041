"""Personalised copies made once a post (mail/personal.py): every member's copy is byte for byte
what the per-copy path (services/deliveries.build_copy) makes, and signed ones verify with
dkimpy (DKIM over the member's own List-Unsubscribe fields, the post's one ARC set)."""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import dkim  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maillist.mail import personal, render, signing
from maillist.models import MailingList, Posting
from maillist.services import deliveries
from maillist.templating import Templates

TEAM = MailingList(
    id=1, address="team@example.org", name="Team", description="Our team", posting=Posting.OPEN,
    subject_prefix="[Team]", max_message_size=10485760, reply_to="author", personalize=True,
    web_url="https://lists.example.org", created_at="t",
)  # fmt: skip
ANNE = render.Author("anne@example.net", "Anne", ("Licensee Badge",))
SECRET = "s3cret"
POSTS = {
    "plain": b"From: Anne <anne@example.net>\r\nTo: team@example.org\r\nSubject: Hello\r\n"
    b"Message-ID: <p1@example.net>\r\n\r\nHello all.\r\n",
    "multipart": b"From: anne@example.net\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"Message-ID: <p2@example.net>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n--b1--\r\n",
    "no content-type": b"From: anne@example.net\r\nSubject:  spaced   out \r\n"
    b"Message-ID: <p3@example.net>\r\n\r\nline with trailing space   \r\n\r\n\r\n",
}
MEMBERS = [("bob@example.com", 7), ("carl@example.net", 8), ("dora@example.org", None)]


def made(mlist: MailingList, raw: bytes, templates: Templates, **signed: object) -> tuple[
    personal.PersonalCopies, render.Parts
]:  # fmt: skip
    base = render.edited(raw, mlist, "p@example.net")
    copy = deliveries.personal_base(mlist, ANNE, "p@example.net", templates)
    return personal.prepare(base, copy, **signed), base  # type: ignore[arg-type]


@pytest.mark.parametrize("post", sorted(POSTS))
@pytest.mark.parametrize("footer", [True, False], ids=["footer", "no-footer"])
@pytest.mark.parametrize("web", ["https://lists.example.org", ""], ids=["web", "no-web"])
def test_each_members_copy_is_the_one_the_per_copy_path_makes(
    post: str, footer: bool, web: str
) -> None:
    mlist = dataclasses.replace(TEAM, footer=footer, web_url=web)
    templates = Templates()
    copies, base = made(mlist, POSTS[post], templates)
    for member, person in MEMBERS:
        fields = copies.fields(*deliveries.unsubscribe_for(mlist, member, person, SECRET))
        expected = deliveries.build_copy(
            POSTS[post], "p@example.net", mlist, ANNE, templates, member=member,
            person_id=person, secret=SECRET, base=base,
        )  # fmt: skip
        assert copies.copy(fields) == expected
        assert (b"List-Unsubscribe-Post:" in fields) == bool(web and person is not None)


def keys() -> tuple[signing.Keys, dict[bytes, bytes]]:
    rsa, rsa_txt = signing.new_key()
    seed, ed_txt = signing.new_ed25519_key()
    records = {
        b"maillist._domainkey.example.org.": rsa_txt.encode(),
        b"maillist-ed._domainkey.example.org.": ed_txt.encode(),
    }
    return signing.Keys("example.org", "maillist", rsa, "maillist-ed", seed), records


KEYS, RECORDS = keys()


def dns(name: bytes, timeout: int = 5) -> bytes:
    return RECORDS[name]


RESULTS = "spf=pass smtp.mailfrom=example.net; dkim=none; arc=none"


@pytest.mark.parametrize("post", sorted(POSTS))
def test_signed_copies_verify_and_share_one_arc_set(post: str) -> None:
    copies, _ = made(TEAM, POSTS[post], Templates(), keys=KEYS, results=RESULTS)
    assert copies.signer is not None
    seals = set()
    for member, person in MEMBERS:
        fields = copies.fields(*deliveries.unsubscribe_for(TEAM, member, person, SECRET))
        [signature] = signing.sign_each(copies.signer, [fields])
        data = copies.copy(fields, signature)
        checker = dkim.DKIM(data)
        assert checker.verify(idx=0, dnsfunc=dns) and checker.verify(idx=1, dnsfunc=dns)
        covered = re.sub(rb"\s", b"", checker.signature_fields[b"h"]).split(b":")
        assert {b"list-unsubscribe", b"list-unsubscribe-post", b"from"} <= set(covered)
        assert dkim.arc_verify(data, dnsfunc=dns)[0] == b"pass"
        seals.add(next(f for f in render.Parts.split(data).fields if f.startswith(b"ARC-Seal")))
    assert len(seals) == 1  # sealed once for the post, valid on every member's copy


def test_the_head_signature_is_the_one_dkim_sign_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_796_000_000.0)
    rsa_only = dataclasses.replace(KEYS, ed25519_selector="", ed25519="")
    copies, _ = made(TEAM, POSTS["multipart"], Templates(), keys=rsa_only)
    assert copies.signer is not None
    fields = copies.fields(*deliveries.unsubscribe_for(TEAM, "bob@example.com", 7, SECRET))
    data = copies.copy(fields)
    ours = copies.signer.sign(fields)
    theirs = dkim.sign(
        data, b"maillist", b"example.org", rsa_only.rsa.encode(),
        canonicalize=(b"relaxed", b"relaxed"), include_headers=list(copies.signer.include),
    )  # fmt: skip
    assert ours == theirs


@settings(max_examples=25, deadline=None)
@given(
    member=st.emails(),
    subject=st.text(st.characters(exclude_categories=["Cs"]), max_size=200),
)
def test_any_member_and_subject_still_verify(member: str, subject: str) -> None:
    raw = render.header_line("Subject", subject) + b"From: anne@example.net\r\n\r\nBody\r\n"
    copies, _ = made(TEAM, raw, Templates(), keys=KEYS, results=RESULTS)
    assert copies.signer is not None
    fields = copies.fields(*deliveries.unsubscribe_for(TEAM, member, 9, SECRET))
    data = copies.copy(fields, signing.sign_each(copies.signer, [fields])[0])
    assert dkim.DKIM(data).verify(idx=1, dnsfunc=dns)  # the RSA one, under the Ed25519 one


def test_a_footer_naming_the_member_is_noticed(tmp_path: Path) -> None:
    assert Templates().footer_names_member is False
    (tmp_path / "message").mkdir()
    footer = tmp_path / "message" / "footer.txt.j2"
    footer.write_text("-- \nSent to {{ member }}\n")
    assert Templates(tmp_path).footer_names_member is True
    footer.write_text('-- \n{% include "message/extra.txt.j2" %}\n')  # may name it: assumed so
    assert Templates(tmp_path).footer_names_member is True
    footer.write_text("-- \n{{ list.name }}\n")
    assert Templates(tmp_path).footer_names_member is False


def test_a_signer_that_cannot_sign_refuses() -> None:
    broken = dataclasses.replace(KEYS, rsa="-----BEGIN RSA PRIVATE KEY-----\nAAAA\n")
    copies, _ = made(TEAM, POSTS["plain"], Templates(), keys=broken)
    assert copies.signer is not None
    with pytest.raises(signing.SigningFailed):
        copies.signer.sign(copies.fields("team-leave@example.org", ""))
