"""What one HTTP client may hold of the process that also serves SMTP: connections in all and
per client address, how long a connection may take to send its request head, and how long
it may live. uvicorn has none of these (its keep-alive timeout runs only between requests),
so 1,100 half-sent requests once used every file descriptor of the process, and SMTP with it.

The guard wraps uvicorn's protocol as a plain asyncio protocol: it decides at
`connection_made`, then forwards every protocol call unchanged, so it depends on nothing of
uvicorn but the keyword arguments uvicorn builds its protocol with. A refused connection gets
`503` and is closed at once, holding its descriptor for no longer than that."""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("maillist.http")

REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    b"Content-Length: 20\r\nRetry-After: 5\r\n\r\nToo many connections"
)
LOOPBACK = frozenset({"127.0.0.1", "::1"})  # a reverse proxy in front: its clients are many


@dataclass(frozen=True, slots=True)
class Limits:
    total: int = 512  # never more than a quarter of the process's descriptors (fitted())
    per_client: int = 32  # not for loopback: a proxy in front speaks for many clients
    head_seconds: float = 10.0  # from connecting to the end of the first request's head
    lifetime_seconds: float = 300.0  # a connection's whole life, keep-alive included

    def fitted(self) -> Limits:
        """`total` within a quarter of the descriptors this process may open: SMTP sessions,
        the database, the relay and the workers' pipes keep the rest."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self
        return Limits(min(self.total, max(soft // 4, 8)), self.per_client,
                      self.head_seconds, self.lifetime_seconds)  # fmt: skip


def raise_descriptor_limit() -> int:
    """The soft limit of open files raised to the hard one (systemd's default soft limit is
    1,024); returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


class Guard:
    """Counts live connections, in all and per client. When all the places are taken, the
    connection that has waited longest for its request head makes room: a flood of slow
    clients from many addresses cannot keep a reader (or the proxy in front) out."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.live = 0
        self._per_client: dict[str, int] = {}
        self._waiting: OrderedDict[int, _Guarded] = OrderedDict()  # no request head yet
        self.refused = 0

    def admit(self, client: str, protocol: _Guarded) -> bool:
        held = self._per_client.get(client, 0)
        full = self.live >= self.limits.total  # evicted ones count until they are gone
        if full and self._waiting:
            _, oldest = self._waiting.popitem(last=False)
            oldest.evict()
            full = False
        if full or (client not in LOOPBACK and held >= self.limits.per_client):
            self.refused += 1
            if self.refused in {1, 10, 100, 1000} or self.refused % 10_000 == 0:
                log.warning("http: %d connection(s) refused so far (limits %d in all, %d per "
                            "client)", self.refused, self.limits.total, self.limits.per_client)  # fmt: skip
            return False
        self.live += 1
        self._per_client[client] = held + 1
        self._waiting[id(protocol)] = protocol
        return True

    def head_done(self, protocol: _Guarded) -> None:
        self._waiting.pop(id(protocol), None)

    def release(self, client: str, protocol: _Guarded) -> None:
        self._waiting.pop(id(protocol), None)
        self.live -= 1
        left = self._per_client.get(client, 1) - 1
        if left:
            self._per_client[client] = left
        else:
            self._per_client.pop(client, None)

    def protocol(self, inner: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
        """uvicorn's `http` setting: a protocol class that guards `inner`."""
        guard = self

        class Guarded(_Guarded):
            _guard = guard
            _inner_class = inner

        return Guarded


class _Guarded(asyncio.Protocol):
    _guard: Guard
    _inner_class: type[asyncio.Protocol]

    def __init__(self, **kwargs: Any) -> None:
        self._inner = self._inner_class(**kwargs)
        self._transport: asyncio.BaseTransport | None = None
        self._client = ""
        self._admitted = False
        self._timers: list[asyncio.TimerHandle] = []
        self._tail = b""  # the last bytes seen, to find the head's end across reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._client = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if not self._guard.admit(self._client, self):
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(REFUSED)
            transport.close()
            return
        self._admitted = True
        self._transport = transport
        limits = self._guard.limits
        loop = asyncio.get_running_loop()
        self._timers = [
            loop.call_later(limits.head_seconds, self._expire, "its request head"),
            loop.call_later(limits.lifetime_seconds, self._expire, "its lifetime"),
        ]
        self._inner.connection_made(transport)

    def evict(self) -> None:
        """Room for a newer connection: this one has sent no request head for the longest."""
        if isinstance(self._transport, asyncio.Transport):
            log.debug("http: closing a connection from %s to make room", self._client)
            self._transport.abort()  # connection_lost follows at once; no lingering

    def _expire(self, what: str) -> None:
        if self._transport is not None and not self._transport.is_closing():
            log.debug("http: closing a connection from %s: past %s", self._client, what)
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        if self._timers and not self._timers[0].cancelled():
            seen = self._tail + data
            if b"\r\n\r\n" in seen:
                self._timers[0].cancel()
                self._guard.head_done(self)
            self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if not self._admitted:
            return None
        result: bool | None = self._inner.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        for timer in self._timers:
            timer.cancel()
        self._guard.release(self._client, self)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._admitted:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self._inner.resume_writing()
