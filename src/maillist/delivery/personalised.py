"""Sending a batch of personalised copies: one SMTP transaction a member, each with the member's
own List-Unsubscribe fields and VERP sender, each signed when the list's domain has a key.

A post's copies are made once (mail/personal.py: the halves around the member's fields, the body
hash, the ARC set) and kept while its batches are sent; per member there is only the fields and,
signed, one DKIM signature. Signatures are made in signer processes (RSA is CPU: the event loop
must not wait on it), a batch's signatures in one call, not one call a copy. (Signer threads were
measured too: OpenSSL lets go of the GIL while it signs, but between signatures each thread waits
for the GIL the loop holds, and 10,000 copies went 18% slower.) A footer that names
the member (Templates.footer_names_member) makes every body different: then each copy is built
and signed, ARC set included, on its own (signing.sign: three RSA signatures a copy).

A batch's transactions go through one relay connection, each one's content with the next one's
commands (delivery/pipelining.py), and are recorded together, so a crash re-sends at most the
batch in flight (as for a shared copy's one transaction to the batch's recipients)."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from maillist.delivery.relay import Relay
from maillist.mail import loops, personal, signing
from maillist.services import deliveries
from maillist.services.deliveries import Batch, SendJob
from maillist.smtpresult import Result, merged
from maillist.templating import Templates

T = TypeVar("T")
SIGNERS = 2  # signer processes: the cores of a small server
KEPT = 64  # posts whose made copies are kept (a post's batches are claimed close together)


class PersonalSender:
    def __init__(self, relay: Relay, templates: Templates) -> None:
        self._relay = relay
        self._templates = templates
        self._signers: ProcessPoolExecutor | None = None
        self._made: dict[int, asyncio.Task[personal.PersonalCopies | None]] = {}

    async def send(self, batch: Batch, job: SendJob) -> tuple[Result, tuple[bytes, ...]]:
        """Each member of the batch their copy; the results as one, and the copies' body
        digests (mail/loops.py). Raises signing.SigningFailed: nothing of the batch was sent."""
        members = batch.recipients
        made = await self._copies(batch.job_id, job)
        if made is None:
            copies = [await self._one(job, member) for member in members]
            digests = tuple(loops.body_digest(c) for c in copies)
        else:
            fields = [made.fields(*self._unsubscribe(job, m)) for m in members]
            signatures = [b""] * len(members)
            if made.signer is not None:
                signatures = await self._in_signer(signing.sign_each, made.signer, fields)
            copies = [made.copy(f, s) for f, s in zip(fields, signatures, strict=True)]
            digests = (made.digest,)
        items = [
            (deliveries.verp(job.mlist, member), (member,), data)
            for member, data in zip(members, copies, strict=True)
        ]
        return merged(await self._relay.send_each(items)), digests

    def warm(self) -> None:
        """Start the signer processes (a spawned interpreter takes a few hundred ms to import
        what signs) before the first copy waits for them."""
        signers = self._signer()
        for _ in range(SIGNERS):
            signers.submit(signing.ready)

    def close(self) -> None:
        if self._signers is not None:
            self._signers.shutdown(wait=False, cancel_futures=True)

    async def _copies(self, job_id: int, job: SendJob) -> personal.PersonalCopies | None:
        """The post's copies made once (None: its footer names each member), shared by the
        senders working on its batches at the same time."""
        task = self._made.get(job_id)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            if len(self._made) >= KEPT:
                self._made = {k: t for k, t in self._made.items() if not t.done()}
            task = asyncio.ensure_future(self._make(job))
            self._made[job_id] = task
        return await asyncio.shield(task)

    async def _make(self, job: SendJob) -> personal.PersonalCopies | None:
        if job.mlist.footer and self._templates.footer_names_member:
            return None
        copy = deliveries.personal_base(job.mlist, job.author, job.message_id, self._templates)
        if job.dkim is None:
            return personal.prepare(job.base, copy)
        return await self._in_signer(personal.prepare, job.base, copy, job.dkim, job.results)

    async def _one(self, job: SendJob, member: str) -> bytes:
        data = deliveries.build_copy(
            job.raw, job.message_id, job.mlist, job.author, self._templates, member=member,
            person_id=job.person_ids.get(member.lower()), secret=job.secret, base=job.base,
        )  # fmt: skip
        if job.dkim is None:
            return data
        return await self._in_signer(signing.sign, data, job.dkim, job.results)

    def _unsubscribe(self, job: SendJob, member: str) -> tuple[str, str]:
        person = job.person_ids.get(member.lower())
        return deliveries.unsubscribe_for(job.mlist, member, person, job.secret)

    async def _in_signer(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._signer(), fn, *args)

    def _signer(self) -> ProcessPoolExecutor:
        if self._signers is None:
            self._signers = ProcessPoolExecutor(
                max_workers=SIGNERS, mp_context=multiprocessing.get_context("spawn")
            )
        return self._signers
