"""Delivery workers inside `maillist serve`: expand accepted posts, send due batches, record.

One expander turns fan-out jobs into batches (slice by slice, in the writer thread); N
senders each claim due batches, send one batch at a time through the relay (a shared copy's one
SMTP transaction, or a personalised batch's transaction a member: delivery/personalised.py), and
record each result before the next send. A crash therefore re-sends at most the one batch each
sender had in flight (batches still `sending` at start-up are made due again)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

from maillist import clock, replies
from maillist.config import LEASE_SECONDS
from maillist.db.store import Store
from maillist.delivery.personalised import PersonalSender
from maillist.delivery.relay import Relay
from maillist.metrics import Metrics
from maillist.services.deliveries import Batch, SendJob
from maillist.services.directory import ListDirectory
from maillist.services.sending import Outcome, Sending
from maillist.smtpresult import Result, everyone
from maillist.templating import Templates

log = logging.getLogger("maillist.delivery")
CLAIM = 20  # batches a sender takes at once; only the one in flight can be sent twice
IDLE_POLL = 1.0
EXPAND_GATHER = 0.005  # seconds for a burst of accepted posts to gather before expanding them
RECLAIM_EVERY = 5.0  # seconds between looks for batches a dead process held (PostgreSQL)
REVIEW_EVERY = 3600.0  # seconds between rounds of bounce warnings, probes and removals


class DeliveryWorkers:
    def __init__(
        self,
        store: Store,
        directory: ListDirectory,
        relay: Relay,
        templates: Templates,
        *,
        connections: int = 4,
        give_up_after: float = 5 * 86400.0,
        metrics: Metrics | None = None,
        lease: float = LEASE_SECONDS,
    ) -> None:
        self._lease = lease
        self._metrics = metrics or Metrics()
        self._store = store
        self._directory = directory
        self._relay = relay
        self._templates = templates
        self._connections = connections
        self._give_up_after = give_up_after
        self._jobs_ready = asyncio.Event()
        self._batches_ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._records: asyncio.Queue[tuple[Outcome, asyncio.Future[str]]] = asyncio.Queue()
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._claimed: set[int] = set()  # batches this process holds and has not recorded
        self._personal = PersonalSender(relay, templates)
        self._sending = Sending(
            store, directory, templates, give_up_after=give_up_after, lease=lease
        )

    def notify(self) -> None:
        """A post was accepted: expand it now rather than at the next poll."""
        self._jobs_ready.set()

    async def start(self) -> None:
        again = await self._sending.reset()
        if again:
            log.warning(
                "%d batch(es) were being sent when maillist stopped: sending them again", again
            )
        if await self._sending.signs_personalised():
            self._personal.warm()  # the signer processes start now, not with the first copy
        self._tasks.append(asyncio.create_task(self._expander(), name="expander"))
        self._tasks.append(asyncio.create_task(self._reviewer(), name="bounce-review"))
        self._tasks.append(asyncio.create_task(self._reclaimer(), name="reclaim"))
        self._recorder_task = asyncio.create_task(self._recorder(), name="recorder")
        for n in range(self._connections):
            self._tasks.append(asyncio.create_task(self._sender(), name=f"sender-{n}"))
        self._jobs_ready.set()
        self._batches_ready.set()

    async def stop(self, grace: float = 30.0) -> None:
        """Let each sender finish the transaction it is in, then stop."""
        self._stopping = True
        self._stop_event.set()
        self._jobs_ready.set()
        self._batches_ready.set()
        _, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._recorder_task.cancel()  # every sender has stopped: nothing is left to record
        with contextlib.suppress(asyncio.CancelledError):
            await self._recorder_task
        await self._sending.release(sorted(self._claimed))
        await self._relay.close()
        self._personal.close()

    async def _wait(self, event: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        event.clear()

    async def _expander(self) -> None:
        """Expansion in steps of a few thousand members: planned (read, rendered) on the reader
        connection, then written in one short transaction (services/deliveries.py), so ingest's
        group commits take turns with it and no 250 waits for a whole fan-out."""
        while not self._stopping:
            try:
                lists = await self._directory.current()
                while not self._stopping:
                    slices = await self._sending.plan(lists)
                    if slices is None:
                        break
                    made = await self._sending.apply(slices)
                    if made:
                        self._batches_ready.set()
                    if all(planned.done or planned.error for planned in slices):
                        break  # the rest arrived meanwhile: let it gather for one step
            except Exception:
                log.exception("expanding fan-out jobs failed; retrying")
                await asyncio.sleep(IDLE_POLL)
            await self._wait(self._jobs_ready, IDLE_POLL)
            # Let a burst of accepted posts gather before the next look.
            await asyncio.sleep(EXPAND_GATHER)

    async def _reviewer(self) -> None:
        """Hourly: warn (and probe) members whose delivery bounces disabled, enable those whose
        probe came through, remove those past the list's warnings (services/bounces.py); send
        the digests that are due (services/digests.py)."""
        while not self._stopping:
            try:
                lists = await self._directory.current()
                done = await self._sending.review(list(lists.values()), clock.now())
                if done:
                    self._batches_ready.set()
            except Exception:
                log.exception("reviewing disabled members failed; trying again later")
            with contextlib.suppress(TimeoutError):  # stop() ends this wait at once
                await asyncio.wait_for(self._stop_event.wait(), REVIEW_EVERY)

    async def _reclaimer(self) -> None:
        """Another process on the same database died holding batches: send them now."""
        while not self._stopping:
            with contextlib.suppress(TimeoutError):  # stop() ends this wait at once
                await asyncio.wait_for(self._stop_event.wait(), RECLAIM_EVERY)
            if self._stopping:
                return
            try:
                again = await self._sending.reclaim()
                if again:
                    log.warning("%d batch(es) of a process that died: sending them", again)
                    self._batches_ready.set()
            except Exception:
                log.exception("looking for a dead process's batches failed; trying again later")

    async def _sender(self) -> None:
        while not self._stopping:
            try:
                claimed, jobs = await self._sending.claim(CLAIM)
                self._claimed.update(b.id for b in claimed)
            except Exception:
                log.exception("claiming batches failed; retrying")
                claimed, jobs = [], {}
                await asyncio.sleep(IDLE_POLL)
            if not claimed:
                await self._wait(self._batches_ready, IDLE_POLL)
                continue
            self._batches_ready.set()  # there may be more: let the other senders look too
            lease_ends = time.monotonic() + self._lease / 2
            for n, batch in enumerate(claimed):
                if self._stopping:
                    break  # the rest stay `sending` and are released by stop()
                if time.monotonic() > lease_ends:  # a slow relay: let others have the rest
                    await self._release(claimed[n:])
                    break
                await self._deliver(batch, jobs[batch.job_id])

    async def _deliver(self, batch: Batch, job: SendJob | None) -> None:
        """Send one batch and record what happened; whatever goes wrong, the batch leaves
        `sending` (sent, deferred with backoff, or failed with the reason)."""
        if job is None:
            await self._fail(batch, "its post or list no longer exists")
            return
        try:
            await self._send(batch, job)
        except Exception as exc:  # a bug, not the relay's answer: deferred, retried, given up
            log.exception("sending batch %d failed", batch.id)
            reply = replies.SEND_FAILED(error=f"{type(exc).__name__}: {exc}")
            result = everyone(batch.recipients, reply, temporary=True)
            with contextlib.suppress(Exception):
                await self._record_until_done(batch, job.mlist.id, result)

    async def _fail(self, batch: Batch, error: str) -> None:
        log.error("batch %d failed: %s", batch.id, error)
        try:
            await self._sending.fail(batch, error)
            self._claimed.discard(batch.id)
        except Exception:
            log.exception("marking batch %d failed did not work; its lease will expire", batch.id)

    async def _release(self, batches: list[Batch]) -> None:
        try:
            await self._sending.release([b.id for b in batches])
            self._claimed.difference_update(b.id for b in batches)
        except Exception:
            log.exception("releasing %d batch(es) failed; their lease will expire", len(batches))

    async def _record(
        self, batch: Batch, list_id: int, result: Result, digests: tuple[bytes, ...] = ()
    ) -> str:
        """Queue the result for the recorder and wait for its commit: a sender never starts its
        next transaction before the last one is on disk (the one-duplicate-per-worker bound)."""
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._records.put_nowait((Outcome(batch, list_id, result, digests), done))
        return await done

    async def _record_until_done(
        self, batch: Batch, list_id: int, result: Result, digests: tuple[bytes, ...] = ()
    ) -> str:
        """A result that was sent must be recorded (else it is sent again): retry while the
        database is unavailable, e.g. locked by a long admin command."""
        pause = 0.1
        while True:
            try:
                return await self._record(batch, list_id, result, digests)
            except Exception:
                if self._stopping:
                    raise
                log.warning("recording batch %d failed; retrying in %.1f s", batch.id, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)

    async def _recorder(self) -> None:
        """Group commit for results: whatever the senders finished meanwhile shares one commit."""
        while True:
            pending = [await self._records.get()]
            while not self._records.empty():
                pending.append(self._records.get_nowait())
            try:
                states = await self._sending.record([outcome for outcome, _ in pending])
            except Exception as exc:
                log.exception("recording %d delivery result(s) failed", len(pending))
                for _, done in pending:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (outcome, done), state in zip(pending, states, strict=True):
                self._claimed.discard(outcome.batch.id)
                if not done.done():
                    done.set_result(state)

    async def _send(self, batch: Batch, job: SendJob) -> None:
        started = datetime.now(UTC)
        digests: tuple[bytes, ...] = ()
        if job.copy.personalized:
            result, digests = await self._personal.send(batch, job)
        else:
            result = await self._relay.send(
                job.copy.envelope_from, batch.recipients, job.copy.rendered or b""
            )
        deliveries_total = self._metrics.deliveries
        deliveries_total.labels("sent").inc(len(result.sent))
        deliveries_total.labels("deferred").inc(len(result.deferred))
        deliveries_total.labels("failed").inc(len(result.failed))
        state = await self._record_until_done(batch, job.mlist.id, result, digests)
        log.info(
            "delivery <%s> list=%s batch=%d recipients=%d sent=%d deferred=%d failed=%d -> %s (%.0f ms)%s",
            job.message_id, job.mlist.address, batch.id, len(batch.recipients), len(result.sent),
            len(result.deferred), len(result.failed), state,
            (datetime.now(UTC) - started).total_seconds() * 1000,
            f" error={(result.deferred or result.failed)[0][1]}" if result.deferred or result.failed else "",
        )  # fmt: skip
