"""Is a post from whom its From says? DKIM and ARC checked on receipt, a trusted host's
Authentication-Results honoured, and DMARC (RFC 7489) applied to the author's domain.

The DNS is asked asynchronously first (the keys every signature names, the author domain's
policy), then dkimpy verifies in a thread against those answers: the event loop never waits on
DNS or hashes a large body. What a hostile post can make us do is bounded: at most
MAX_SIGNATURES DKIM signatures and MAX_ARC_SETS ARC sets are looked at, names are checked before
they are asked, and every lookup has the resolver's timeout and cache (resolver.py).

SPF is not checked here: behind Postfix (the documented set-up) maillist never sees the client
that sent the post. A trusted host's (`--trusted-authserv`) SPF result counts."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

import authres  # type: ignore[import-untyped]  # no type information shipped
import dkim  # type: ignore[import-untyped]  # dkimpy ships no type information
from dkim.util import parse_tag_value  # type: ignore[import-untyped]

from maillist.mail import dmarc
from maillist.mail.dmarc import OrgDomains, Record
from maillist.mail.render import Parts
from maillist.models import Authentication, AuthResult
from maillist.services.resolver import LookupFailed, Resolver

log = logging.getLogger("maillist.auth")
MAX_SIGNATURES = 5
MAX_ARC_SETS = 8
# dkimpy splits the whole message into lines (about 50 bytes of memory each): a message of more
# lines than this (10 MiB of base64 has 140,000) is not verified, and its signatures count as
# permerror. Ten million empty lines would otherwise cost half a gigabyte.
MAX_VERIFY_LINES = 300_000
_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}$")


@dataclass(frozen=True, slots=True)
class _Verified:
    dkim: tuple[tuple[str, AuthResult], ...]  # (d=, result)
    arc: AuthResult
    arc_sealer: str  # d= of the newest seal
    arc_dmarc_pass: bool  # that seal's ARC-Authentication-Results say dmarc=pass


def _tags(field: bytes) -> dict[bytes, bytes]:
    try:
        value = field.split(b":", 1)[1]
        return dict(parse_tag_value(b"".join(value.split())))
    except Exception:  # a malformed signature is one that fails
        return {}


def _instance(tags: dict[bytes, bytes]) -> int:
    value = tags.get(b"i", b"")
    return int(value) if value.isdigit() and len(value) < 4 else 0


def _key_name(tags: dict[bytes, bytes]) -> str:
    selector = tags.get(b"s", b"").decode("ascii", "replace").lower()
    domain = tags.get(b"d", b"").decode("ascii", "replace").lower().rstrip(".")
    name = f"{selector}._domainkey.{domain}"
    return name if _NAME.match(name) else ""


def _fields(parts: Parts, name: str) -> list[bytes]:
    return [f for f in parts.fields if f.split(b":", 1)[0].strip().lower() == name.encode()]


def _verify(
    raw: bytes, signatures: int, keys: dict[str, bytes | None], failed: frozenset[str], arc: bool
) -> _Verified:
    """dkimpy over the post, answering its DNS questions from what was fetched (thread)."""

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        return keys.get(name.decode("ascii", "replace").lower().rstrip("."))

    results: list[tuple[str, AuthResult]] = []
    if not signatures and not arc:
        return _Verified((), AuthResult.NONE, "", False)
    try:
        checker = dkim.DKIM(raw, minkey=1024)
    except (dkim.DKIMException, IndexError):  # rfc822_parse: bad header line, leading fold
        checker = None
    fields = Parts.split(raw)
    for idx, field in enumerate(_fields(fields, "dkim-signature")[:signatures]):
        tags = _tags(field)
        domain = tags.get(b"d", b"").decode("ascii", "replace").lower()
        if b"l" in tags:  # a body length limit lets anyone append to a signed post
            results.append((domain or "unknown", AuthResult.FAIL))
            continue
        ok = False
        if checker is not None:
            try:
                ok = bool(checker.verify(idx=idx, dnsfunc=lookup))
            except Exception:  # dkimpy raises DKIMException, ValueError, ... on junk: fail
                ok = False
        result = (
            AuthResult.PASS
            if ok
            else (AuthResult.TEMPERROR if _key_name(tags) in failed else AuthResult.FAIL)
        )
        results.append((domain or "unknown", result))
    arc_result, sealer, aar_pass = AuthResult.NONE, "", False
    if arc:
        try:
            cv, _sets, _why = dkim.arc_verify(raw, dnsfunc=lookup)
            # pass | fail | none (dkim.CV_*); anything else raises here and counts as a failure
            arc_result = (
                AuthResult(cv.decode("ascii", "replace").lower()) if cv else AuthResult.FAIL
            )
        except Exception:  # dkimpy lets more than DKIMException out on a junk chain: fail
            arc_result = AuthResult.FAIL
        seals = sorted((_tags(f) for f in _fields(fields, "arc-seal")), key=_instance)
        if seals:
            newest = seals[-1]
            sealer = newest.get(b"d", b"").decode("ascii", "replace").lower()
            instance = newest.get(b"i", b"")
            for aar in _fields(fields, "arc-authentication-results"):
                value = aar.split(b":", 1)[1]
                if _tags(b"x:" + value.split(b";", 1)[0]).get(b"i") == instance:
                    aar_pass = b"dmarc=pass" in b"".join(value.split()).lower()
    return _Verified(tuple(results), arc_result, sealer, aar_pass)


class Authenticator:
    """One per server process (built by `maillist serve`, shared by every session)."""

    def __init__(
        self,
        resolver: Resolver,
        orgs: OrgDomains,
        *,
        trusted_authserv: str = "",
        trusted_arc: Iterable[str] = (),
    ) -> None:
        self.resolver = resolver
        self.orgs = orgs
        self.trusted_authserv = trusted_authserv.strip().lower()
        self.trusted_arc = frozenset(d.strip().lower() for d in trusted_arc if d.strip())

    async def check(self, raw: bytes, sender: str | None) -> Authentication:
        from_domain = sender.rpartition("@")[2].lower() if sender else ""
        parts = Parts.split(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
        signatures = _fields(parts, "dkim-signature")[:MAX_SIGNATURES]
        arc_fields = [*_fields(parts, "arc-seal"), *_fields(parts, "arc-message-signature")]
        arc = bool(arc_fields) and len(arc_fields) <= 2 * MAX_ARC_SETS
        names = {_key_name(_tags(f)) for f in signatures + (arc_fields if arc else [])} - {""}
        policy_task = asyncio.ensure_future(self._policy(from_domain))
        if raw.count(b"\n") > MAX_VERIFY_LINES:
            domains = [
                _tags(f).get(b"d", b"unknown").decode("ascii", "replace") for f in signatures
            ]
            verified = _Verified(
                tuple((d, AuthResult.PERMERROR) for d in domains),
                AuthResult.FAIL if arc_fields else AuthResult.NONE,
                "",
                False,
            )
        elif not signatures and not arc:  # nothing to verify: no thread hop, no DNS for keys
            verified = _Verified((), AuthResult.NONE, "", False)
        else:
            keys, failed = await self._keys(names)
            verified = await asyncio.to_thread(_verify, raw, len(signatures), keys, failed, arc)
        record, at_org, lookup_failed = await policy_task
        if arc_fields and not arc:
            verified = _Verified(verified.dkim, AuthResult.FAIL, "", False)
        passes = tuple(d for d, r in verified.dkim if r is AuthResult.PASS)
        via = ""
        strict = record is not None and record.adkim == "s"
        aligned = any(self.orgs.aligned(d, from_domain, strict) for d in passes)
        if not aligned and from_domain:
            via = self._trusted(parts, from_domain, record)
            if (
                not via
                and verified.arc is AuthResult.PASS
                and verified.arc_sealer in self.trusted_arc
            ):
                via = f"arc by {verified.arc_sealer}" if verified.arc_dmarc_pass else ""
        result, policy = dmarc.evaluate(
            from_domain, record, at_org, passes, (via,) if via else (), self.orgs,
            lookup_failed=lookup_failed,
            key_lookup_failed=any(r is AuthResult.TEMPERROR for _, r in verified.dkim),
        )  # fmt: skip
        return Authentication(
            from_domain=from_domain, dkim=verified.dkim, arc=verified.arc, dmarc=result,
            policy=policy, via=via if result is AuthResult.PASS else "",
            proven=bool(from_domain) and (aligned or bool(via)) and result is not AuthResult.FAIL,
        )  # fmt: skip

    async def _keys(self, names: set[str]) -> tuple[dict[str, bytes | None], frozenset[str]]:
        async def one(name: str) -> tuple[str, tuple[str, ...] | None]:
            try:
                return name, await self.resolver.txt(name)
            except LookupFailed:
                return name, None

        found = await asyncio.gather(*(one(n) for n in sorted(names)))
        keys = {n: (r[0].encode("utf-8") if r else None) for n, r in found}
        return keys, frozenset(n for n, r in found if r is None)

    async def policy(self, domain: str) -> str:
        """The author domain's DMARC policy as mitigation reads it (dmarc.mitigation)."""
        record, at_org, failed = await self._policy(domain)
        if failed:
            return dmarc.UNKNOWN
        if record is None:
            return ""
        return record.subdomain_policy if at_org else record.policy

    async def _policy(self, domain: str) -> tuple[Record | None, bool, bool]:
        """(record, found at the organisational domain, lookup failed)."""
        if not domain or not _NAME.match(f"_dmarc.{domain}"):
            return None, False, False
        try:
            record = dmarc.parse_record(await self.resolver.txt(f"_dmarc.{domain}"))
            if record is not None:
                return record, False, False
            org = self.orgs.of(domain)
            if org != domain:
                record = dmarc.parse_record(await self.resolver.txt(f"_dmarc.{org}"))
                return record, record is not None, False
        except LookupFailed:
            return None, False, True
        return None, False, False

    def _trusted(self, parts: Parts, from_domain: str, record: Record | None) -> str:
        """An aligned pass in the topmost Authentication-Results, if a trusted host wrote it
        (RFC 8601: that host removes any field with its id that the sender wrote)."""
        if not self.trusted_authserv:
            return ""
        top = next(iter(_fields(parts, "authentication-results")), None)
        if top is None:
            return ""
        try:
            text = " ".join(top.decode("utf-8", "replace").split())
            header = authres.AuthenticationResultsHeader.parse(text)
        except Exception:  # authres: AuthResError, ValueError, ...: an unreadable field is no pass
            return ""
        if str(header.authserv_id).lower() != self.trusted_authserv:
            return ""
        strict_dkim = record is not None and record.adkim == "s"
        strict_spf = record is not None and record.aspf == "s"
        for res in header.results:
            if str(res.result).lower() != AuthResult.PASS:
                continue
            props = {f"{p.type}.{p.name}".lower(): str(p.value).lower() for p in res.properties}
            method = str(res.method).lower()
            if method == "dmarc" and props.get("header.from") == from_domain:
                return "trusted host"
            if method == "dkim" and self.orgs.aligned(
                props.get("header.d", ""), from_domain, strict_dkim
            ):
                return "trusted host"
            if method == "spf":
                mailfrom = props.get("smtp.mailfrom", "").rpartition("@")[2]
                if mailfrom and self.orgs.aligned(mailfrom, from_domain, strict_spf):
                    return "trusted host"
        return ""
