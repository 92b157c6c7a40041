"""Worker processes for the work the event loop must not do: anything that parses, matches or
renders what a sender wrote, each call under a real deadline.

The stdlib's MIME parser, flufl.bounce's detectors (one of its regexes is cubic on a line of
`<`) and the archive's HTML rendering can each be pushed by a crafted message far past what its
size suggests. A thread cannot be stopped, so four looping clients once left threads parsing in
the background until the server held 1.4 GB. Here each call runs in a worker process; past the
deadline the process is killed (its CPU and memory are freed at once) and replaced, and the
caller gets TimeoutError and shows or handles the message in a degraded form.

Each user gets a sandbox of its own (SMTP's intake, the archive's display), so a reader who asks
for the same poisoned page a thousand times keeps the display workers busy, never SMTP's.

Functions run here must be importable module-level functions of pure modules: they are sent to
the worker by name (the `spawn` start method: no fork of a threaded process)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from maillist.errors import MaillistError

log = logging.getLogger("maillist.sandbox")
T = TypeVar("T")


class SandboxBusy(MaillistError):
    """Every worker stayed busy for longer than a call may wait for one."""


class SandboxFailed(MaillistError):
    """The function raised something that is not a MaillistError, or its worker died."""


@dataclass(frozen=True, slots=True)
class Overrun:
    """In `each`'s results: this item blew its budget (or broke its worker)."""

    reason: str


def _serve(conn: Connection) -> None:
    """A worker's life: run what comes down the pipe until the pipe closes. For a batch, one
    answer per item as soon as it is done, so the parent can time each item on its own.

    A terminal's Ctrl-C goes to the whole process group, workers included: they leave it to the
    server, which stops them (a KeyboardInterrupt here is only a traceback on the admin's screen)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            batch, fn, args, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        for item in args if batch else [args]:
            try:
                conn.send(("ok", fn(*item, **kwargs)))
            except MaillistError as exc:
                conn.send(("error", exc))
            except Exception as exc:
                conn.send(("error", SandboxFailed(type(exc).__name__)))


class _Worker:
    """One process and its pipe. Used by one thread at a time (the sandbox hands workers out)."""

    def __init__(self, context: Any, name: str) -> None:
        self._context = context
        self._name = name
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        if self._process is None or not self._process.is_alive() or self._conn is None:
            self.stop()
            ours, theirs = self._context.Pipe()
            process = self._context.Process(
                target=_serve, args=(theirs,), name=self._name, daemon=True
            )
            process.start()
            theirs.close()
            self._process, self._conn = process, ours
        return self._conn

    def _answer(self, conn: Connection, seconds: float) -> tuple[str, Any]:
        try:
            if not conn.poll(seconds):
                self.stop()  # the only way to stop a call: the process goes, a new one comes
                return "timeout", None
            answer: tuple[str, Any] = conn.recv()
            return answer
        except (EOFError, OSError):  # the worker died (killed from outside, out of memory)
            self.stop()
            return "died", None

    def call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], seconds: float
    ) -> Any:
        conn = self._start()  # a (re)start is not counted against the call's deadline
        try:
            conn.send((False, fn, args, kwargs))
        except (OSError, ValueError):
            self.stop()
            raise SandboxFailed("worker unavailable") from None
        kind, value = self._answer(conn, seconds)
        if kind == "timeout":
            raise TimeoutError
        if kind == "died":
            raise SandboxFailed("worker died")
        if kind == "error":
            raise value
        return value

    def each(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        seconds: float,
        total: float | None,
    ) -> list[Any]:
        """fn(*item) for every item, each within `seconds`; an item past it (or one that breaks
        the worker) becomes an Overrun and the rest go on in a fresh worker. Past `total`
        seconds in all, the items not yet done are left out (the list comes back shorter)."""
        results: list[Any] = []
        until = None if total is None else time.monotonic() + total
        while len(results) < len(items):
            if until is not None and time.monotonic() >= until:
                break
            rest = list(items[len(results) :])
            conn = self._start()
            try:
                conn.send((True, fn, rest, {}))
            except (OSError, ValueError):
                self.stop()
                results.append(Overrun("worker unavailable"))
                continue
            for _ in rest:
                wait = seconds if until is None else min(seconds, until - time.monotonic())
                kind, value = self._answer(conn, max(wait, 0.0))
                if kind == "timeout" and wait < seconds:
                    return results  # the total ran out, not this item's own budget
                if kind == "ok":
                    results.append(value)
                    continue
                if kind == "error":
                    results.append(Overrun(str(value) or type(value).__name__))
                    continue
                results.append(Overrun(f"over its {seconds:g} s budget" if kind == "timeout"
                                       else "its worker died"))  # fmt: skip
                break  # the worker was stopped: the rest go to a new one
        return results

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(5)
            self._process = None


class Sandbox:
    """A few worker processes and a queue of callers. Workers start on first use."""

    def __init__(self, name: str, workers: int = 2, wait_seconds: float = 30.0) -> None:
        self._context = multiprocessing.get_context("spawn")  # never fork a threaded process
        self._workers = [_Worker(self._context, f"maillist-{name}") for _ in range(workers)]
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._idle: asyncio.Queue[_Worker] | None = None
        self._wait = wait_seconds
        self.name = name

    @property
    def size(self) -> int:
        return len(self._workers)

    def warm(self, fn: Callable[..., Any], *args: Any) -> asyncio.Task[None]:
        """Start every worker now, each running fn(*args) once (importing what fn needs), so
        the first real call does not wait for a new interpreter (a few hundred milliseconds)."""

        async def one() -> None:
            try:
                await self.run(fn, *args, seconds=self._wait)
            except Exception:  # a worker that cannot start now is started again when used
                log.warning("a %s worker did not start ahead of use", self.name, exc_info=True)

        async def every() -> None:
            await asyncio.gather(*(one() for _ in self._workers))

        return asyncio.create_task(every(), name=f"warm-{self.name}")

    async def run(self, fn: Callable[..., T], *args: Any, seconds: float, **kwargs: Any) -> T:
        """fn(*args, **kwargs) in a worker. Raises TimeoutError past `seconds`, SandboxBusy when
        no worker was free within the wait, the MaillistError fn raised, or SandboxFailed."""
        result: T = await self._on_worker(lambda w: w.call(fn, args, kwargs, seconds))
        return result

    async def each(
        self,
        fn: Callable[..., T],
        items: Sequence[tuple[Any, ...]],
        *,
        seconds: float,
        total: float | None = None,
    ) -> list[T | Overrun]:
        """fn(*item) for each item in one worker, each item under its own budget of `seconds`
        (an item past it is an Overrun); past `total` seconds in all, the items not reached are
        left out of the list (shorter than `items`)."""
        if not items:
            return []
        results: list[T | Overrun] = await self._on_worker(
            lambda w: w.each(fn, items, seconds, total)
        )
        return results

    async def _on_worker(self, work: Callable[[_Worker], Any]) -> Any:
        if self._idle is None:
            self._idle = asyncio.Queue()
            for worker in self._workers:
                self._idle.put_nowait(worker)
        try:
            worker = await asyncio.wait_for(self._idle.get(), self._wait)
        except TimeoutError:
            raise SandboxBusy(f"every {self.name} worker stayed busy") from None
        loop = asyncio.get_running_loop()
        idle = self._idle
        running = self._threads.submit(work, worker)
        try:
            return await asyncio.wrap_future(running)
        finally:
            # The worker is free again only when its thread is done with it, even if the
            # caller went away meanwhile.
            if running.done():
                idle.put_nowait(worker)
            else:
                running.add_done_callback(
                    lambda _: loop.call_soon_threadsafe(idle.put_nowait, worker)
                )

    async def close(self) -> None:
        await asyncio.to_thread(self._stop_all)
        self._threads.shutdown(wait=False, cancel_futures=True)

    def _stop_all(self) -> None:
        for worker in self._workers:
            with contextlib.suppress(Exception):
                worker.stop()
