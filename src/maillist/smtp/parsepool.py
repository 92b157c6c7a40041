"""Worker processes for the parses the event loop must not run, each under a real deadline.

Multipart messages and anything over 64 KiB are parsed by the stdlib's MIME parser, whose cost a
crafted message can push far past its size (nested parts, parameters re-parsed per lookup). A
thread cannot be stopped, so four looping clients once left threads parsing in the background
until the server held 1.4 GB. Here each parse runs in a worker process; past the deadline the
process is killed (its CPU and memory are freed at once) and replaced. The workers are the
pool's own: delivery and the default executor never wait behind them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from maillist import mailparse, replies
from maillist.errors import MaillistError, MessageRefused

log = logging.getLogger("maillist.parse")


class ParserBusy(MaillistError):
    """Every worker stayed busy for longer than a message may wait for one."""


def _serve(conn: Connection) -> None:
    """A worker's life: parse what comes down the pipe until the pipe closes."""
    while True:
        try:
            raw, limits, received_at, domain = conn.recv()
        except (EOFError, OSError):
            return
        try:
            parsed = mailparse.prepare(raw, limits, received_at=received_at, domain=domain)
            conn.send(("ok", parsed))
        except MessageRefused as exc:
            conn.send(("refused", str(exc)))
        except Exception as exc:  # the parser is lenient; anything it raises is a refusal
            conn.send(("refused", replies.UNPARSABLE(error=type(exc).__name__)))


class _Worker:
    """One process and its pipe. Used by one thread at a time (the pool hands workers out)."""

    def __init__(self, context: Any) -> None:
        self._context = context
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        if self._process is None or not self._process.is_alive() or self._conn is None:
            self.stop()
            ours, theirs = self._context.Pipe()
            process = self._context.Process(
                target=_serve, args=(theirs,), name="maillist-parse", daemon=True
            )
            process.start()
            theirs.close()
            self._process, self._conn = process, ours
        return self._conn

    def call(
        self, raw: bytes, limits: mailparse.Limits, received_at: datetime, domain: str
    ) -> mailparse.ParsedMessage:
        conn = self._start()  # a (re)start is not counted against the message's deadline
        try:
            conn.send((raw, limits, received_at, domain))
            ready = conn.poll(limits.parse_seconds)
            kind, value = conn.recv() if ready else ("timeout", None)
        except (EOFError, OSError):  # the worker died (killed from outside, out of memory)
            self.stop()
            raise MessageRefused(replies.PARSER_FAILED()) from None
        if kind == "timeout":
            self.stop()  # the only way to stop a parse: the process goes, and a new one comes
            raise TimeoutError
        if kind == "refused":
            raise MessageRefused(str(value))
        assert isinstance(value, mailparse.ParsedMessage)
        return value

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(5)
            self._process = None


class ParsePool:
    def __init__(self, workers: int = 2, wait_seconds: float = 30.0) -> None:
        self._context = multiprocessing.get_context("spawn")  # never fork a threaded process
        self._workers = [_Worker(self._context) for _ in range(workers)]
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="maillist-parse")
        self._idle: asyncio.Queue[_Worker] | None = None
        self._wait = wait_seconds

    async def parse(
        self, raw: bytes, limits: mailparse.Limits, *, received_at: datetime, domain: str
    ) -> mailparse.ParsedMessage:
        """Raises MessageRefused, TimeoutError (past limits.parse_seconds) or ParserBusy."""
        if self._idle is None:
            self._idle = asyncio.Queue()
            for worker in self._workers:
                self._idle.put_nowait(worker)
        try:
            worker = await asyncio.wait_for(self._idle.get(), self._wait)
        except TimeoutError:
            raise ParserBusy("every parser stayed busy") from None
        loop = asyncio.get_running_loop()
        idle = self._idle
        running = self._threads.submit(worker.call, raw, limits, received_at, domain)
        try:
            return await asyncio.wrap_future(running)
        finally:
            # The worker is free again only when its thread is done with it, even if the
            # session that asked went away meanwhile.
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
