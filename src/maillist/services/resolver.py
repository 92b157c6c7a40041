"""TXT lookups for DKIM keys and DMARC policies: dnspython's async resolver, a short timeout, and
a cache that keeps each answer for its TTL and holds at most a bounded number of names.

The resolver's address comes from `--dns HOST:PORT` / MAILLIST_DNS, else the system's
resolv.conf. Tests point it at a DNS server on loopback; no test asks the internet."""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from maillist.errors import BadOption

DEFAULT_TIMEOUT = 3.0
CACHE_NAMES = 4096  # names kept; the least recently used goes first
MIN_TTL, MAX_TTL = 30, 86400
NEGATIVE_TTL = 300  # a name without TXT records is asked again after 5 minutes
ERROR_TTL = 30  # a lookup that failed is not repeated at once for every post
MAX_TXT_BYTES = 8192  # per name: more is not a DKIM key or a DMARC record, and costs memory


class LookupFailed(Exception):
    """The DNS did not answer (timeout, SERVFAIL): nothing is known about the name."""


@dataclass(frozen=True, slots=True)
class _Entry:
    expires: float
    records: tuple[str, ...] | None  # None: the lookup failed


def parse_server(value: str) -> tuple[str, int]:
    """`HOST` or `HOST:PORT` (IPv6 as `[::1]:53`) -> (address, port)."""
    text = value.strip()
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":") or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadOption(f"--dns wants HOST or HOST:PORT, not {value!r}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise BadOption(
            f"--dns wants the resolver's IP address (and port), not {value!r}"
        ) from None
    return host, int(port)


class Resolver:
    """One per process; shared by every session (no global state: serve builds it)."""

    def __init__(
        self,
        server: str = "",
        timeout: float = DEFAULT_TIMEOUT,
        cache_names: int = CACHE_NAMES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if server:
            host, port = parse_server(server)
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [host]
            self._resolver.port = port
        else:
            try:
                self._resolver = dns.asyncresolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                self._resolver = dns.asyncresolver.Resolver(configure=False)
                self._resolver.nameservers = ["127.0.0.1"]
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._cache_names = cache_names
        self._clock = clock
        self.lookups = 0  # asked of the DNS, not the cache

    async def txt(self, name: str) -> tuple[str, ...]:
        """The TXT records at `name` (each one's strings joined), () if there are none; raises
        LookupFailed when the DNS did not answer."""
        key = name.lower().rstrip(".")
        now = self._clock()
        entry = self._cache.get(key)
        if entry is not None and entry.expires > now:
            self._cache.move_to_end(key)
            if entry.records is None:
                raise LookupFailed(f"no answer for {key} (cached)")
            return entry.records
        self.lookups += 1
        try:
            answer = await self._resolver.resolve(key + ".", "TXT", raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            self._put(key, (), NEGATIVE_TTL)
            return ()
        except (dns.exception.DNSException, OSError) as exc:
            self._put(key, None, ERROR_TTL)
            raise LookupFailed(f"no answer for {key}: {type(exc).__name__}") from None
        records: list[str] = []
        size = 0
        ttl = NEGATIVE_TTL
        if answer.rrset is not None:
            ttl = answer.rrset.ttl
            for rdata in answer.rrset:
                if rdata.rdtype != dns.rdatatype.TXT:
                    continue
                text = b"".join(rdata.strings)
                size += len(text)
                if size > MAX_TXT_BYTES:
                    break
                records.append(text.decode("utf-8", "replace"))
        found = tuple(records)
        self._put(key, found, ttl)
        return found

    def _put(self, key: str, records: tuple[str, ...] | None, ttl: float) -> None:
        ttl = min(max(ttl, MIN_TTL), MAX_TTL) if records is not None else ttl
        self._cache[key] = _Entry(self._clock() + ttl, records)
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_names:
            self._cache.popitem(last=False)

    def cached(self, name: str) -> tuple[str, ...] | None:
        """What the cache holds for `name` now (for dkimpy's synchronous lookups after a
        prefetch), None if nothing or a failure."""
        entry = self._cache.get(name.lower().rstrip("."))
        if entry is None or entry.expires <= self._clock():
            return None
        return entry.records
