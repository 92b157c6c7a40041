"""DMARC (RFC 7489) as a list needs it: an author domain's published policy, identifier
alignment, what a post's authentication results amount to, and how a copy is mitigated. Pure:
DNS answers and verification results in, values out (services/authentication.py does the I/O).

Organisational domains come from the Public Suffix List shipped by the `publicsuffixlist`
package (updated on PyPI as the list changes)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

from maillist.models import Authentication, AuthResult

POLICIES = frozenset({"none", "quarantine", "reject"})
STRICT = frozenset({"quarantine", "reject"})
UNKNOWN = "unknown"  # the policy lookup failed: a list treats it as strict (fail safe)
MODES = ("auto", "munge", "wrap", "none")


@dataclass(frozen=True, slots=True)
class Record:
    policy: str  # p=
    subdomain_policy: str  # sp= (defaults to p=)
    adkim: str = "r"
    aspf: str = "r"


def parse_record(texts: tuple[str, ...]) -> Record | None:
    """The DMARC record among the TXT strings at _dmarc.DOMAIN: exactly one must start with
    `v=DMARC1` (RFC 7489 6.6.3), else there is none. A missing or unknown p= is `none`."""
    found = [t for t in texts if t.replace(" ", "").lower().startswith("v=dmarc1")]
    if len(found) != 1:
        return None
    tags: dict[str, str] = {}
    for part in found[0].split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags.setdefault(name.strip().lower(), value.strip().lower())
    policy = tags.get("p", "none")
    policy = policy if policy in POLICIES else "none"
    sub = tags.get("sp", policy)
    return Record(
        policy=policy,
        subdomain_policy=sub if sub in POLICIES else policy,
        adkim="s" if tags.get("adkim") == "s" else "r",
        aspf="s" if tags.get("aspf") == "s" else "r",
    )


class OrgDomains:
    """Organisational domains from the Public Suffix List (loaded once per process: ~50 ms)."""

    def __init__(self) -> None:
        self._psl = PublicSuffixList()
        self.of = lru_cache(maxsize=4096)(self._of)

    def _of(self, domain: str) -> str:
        name = domain.lower().rstrip(".")
        return self._psl.privatesuffix(name) or name

    def aligned(self, identifier: str, author: str, strict: bool) -> bool:
        a, b = identifier.lower().rstrip("."), author.lower().rstrip(".")
        if strict:
            return a == b
        return a == b or self.of(a) == self.of(b)


def mitigation(mode: str, author_policy: str) -> str:
    """'munge', 'wrap' or '' for a post whose author domain's policy is `author_policy`
    (reject | quarantine | none | '' for none published | unknown when the lookup failed)."""
    if mode in {"munge", "wrap"}:
        return mode
    if mode == "auto" and (author_policy in STRICT or author_policy == UNKNOWN):
        return "munge"
    return ""


def evaluate(
    from_domain: str,
    record: Record | None,
    org_lookup: bool,
    dkim_passes: tuple[str, ...],
    other_passes: tuple[str, ...],
    orgs: OrgDomains,
    *,
    lookup_failed: bool = False,
    key_lookup_failed: bool = False,
) -> tuple[AuthResult, str]:
    """(dmarc result, published policy). `org_lookup`: the record was found at the
    organisational domain, so a subdomain's sp= applies. `other_passes` are aligned passes that
    did not come from our own DKIM check (a trusted host's results, a trusted ARC chain)."""
    if lookup_failed:
        aligned = any(orgs.aligned(d, from_domain, False) for d in dkim_passes)
        return (AuthResult.PASS if aligned or other_passes else AuthResult.TEMPERROR), UNKNOWN
    if record is None:
        return AuthResult.NONE, ""
    policy = record.subdomain_policy if org_lookup else record.policy
    if any(orgs.aligned(d, from_domain, record.adkim == "s") for d in dkim_passes):
        return AuthResult.PASS, policy
    if other_passes:
        return AuthResult.PASS, policy
    return (AuthResult.TEMPERROR if key_lookup_failed else AuthResult.FAIL), policy


def summary(auth: Authentication) -> str:
    """The results as RFC 8601 method=result pairs, after the authserv-id."""
    parts = [f"dkim={r} header.d={d}" for d, r in auth.dkim] or [f"dkim={AuthResult.NONE}"]
    parts.append(f"arc={auth.arc}")
    notes = " ".join(n for n in (f"p={auth.policy}" if auth.policy else "", auth.via) if n)
    comment = f" ({notes})" if notes else ""
    parts.append(f"dmarc={auth.dmarc}{comment} header.from={auth.from_domain or 'unknown'}")
    return "; ".join(parts)
