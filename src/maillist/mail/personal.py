"""Personalised copies of one post: made once, finished per member. Pure.

A personalised copy differs from another member's only in its List-Unsubscribe fields (the
member's own token, services/deliveries.py), as long as the footer template does not name the
member (Templates.footer_names_member). So a post's copy is rendered once with a gap where those
fields go (render.around_unsubscribe), and a member's copy is the two halves with the member's
fields between them: byte for byte what render.finish makes for that member (tested).

Signed, the shared parts are signed once too: the body's hash (signing.body_hash) and the ARC set
(RFC 8617), whose ARC-Message-Signature covers what every copy shares and not the member's
fields, so one seal serves every copy. What is left per member is the DKIM-Signature over the
header fields it covers, the member's List-Unsubscribe ones included (RFC 8058 one-click needs
them signed): one RSA signature (signing.HeadSigner, in a signer process)."""

from __future__ import annotations

from dataclasses import dataclass

from maillist.mail import loops, render, signing
from maillist.models import MailingList


@dataclass(frozen=True, slots=True)
class PersonalCopies:
    mlist: MailingList
    before: bytes  # the ARC set (when sealed) and the header fields before the gap
    after: bytes  # the header fields after it, the blank line and the body
    digest: bytes  # the body's loop digest (mail/loops.py): the same for every copy
    signer: signing.HeadSigner | None = None  # None: unsigned

    def fields(self, mailto: str, url: str) -> bytes:
        """One member's List-Unsubscribe fields."""
        return b"".join(
            render.header_line(n, v) for n, v in render.unsubscribe_fields(self.mlist, mailto, url)
        )

    def copy(self, fields: bytes, signature: bytes = b"") -> bytes:
        return signature + self.before + fields + self.after


def prepare(
    base: render.Parts,
    copy: render.Copy,
    keys: signing.Keys | None = None,
    results: str | None = None,
) -> PersonalCopies:
    """A post's personalised copies. `copy` says everything but the member (its footer must not
    name one); with `keys`, the body hash and, with `results`, the ARC set are made here once
    (3 RSA signatures: call it where that may take a few milliseconds)."""
    before, after = render.around_unsubscribe(base, copy)
    head_before, rest = b"".join(before), b"".join(after)
    shared = head_before + rest  # a copy without the member's fields
    digest = loops.body_digest(shared)
    if keys is None:
        return PersonalCopies(copy.mlist, head_before, rest, digest)
    if results is not None:
        sealed = signing.arc_seal(shared, keys.selector, keys.domain, keys.rsa, results)
        top = sealed[: len(sealed) - len(shared)]
        before = render.Parts.split(top + b"\r\n").fields + before
        head_before = top + head_before
    after_fields = after[:-1]
    # A member without a token gets no List-Unsubscribe-Post: covering an absent field is allowed.
    url = "https://invalid/" if copy.mlist.web_url else ""
    sample = render.unsubscribe_fields(copy.mlist, "x@invalid", url)
    include = signing.signed_fields(
        head_before + b"".join(render.header_line(n, v) for n, v in sample) + b"".join(after_fields)
    )
    covered = {name.decode() for name in include}
    signer = signing.HeadSigner.make(
        keys, include, signing.body_hash(after[-1][2:]),
        b"".join(f for f in before if render.field_name(f) in covered),
        b"".join(f for f in after_fields if render.field_name(f) in covered),
    )  # fmt: skip
    return PersonalCopies(copy.mlist, head_before, rest, digest, signer)
