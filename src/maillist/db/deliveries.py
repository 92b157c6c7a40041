"""SQL of the outbound queue (synchronous, on the writer's connection): jobs, batches, failures."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from maillist.db import engine
from maillist.db.store import Conn


@dataclass(frozen=True, slots=True)
class Source:
    """What a fan-out job needs to build its copies."""

    job_id: int
    list_id: int
    message_row: int
    message_id: str
    sender: str
    sender_name: str
    expanded_to: tuple[str, int] = ("", 0)  # (domain, person id) of the last member expanded


@dataclass(frozen=True, slots=True)
class Batch:
    id: int
    job_id: int
    recipients: tuple[str, ...]
    attempts: int
    created_at: str


@dataclass(frozen=True, slots=True)
class JobCopy:
    list_id: int
    personalized: bool
    envelope_from: str
    rendered: bytes | None
    message_row: int
    notice: bool = False  # a notice's job: its refusals are not a member's bounces


def pending_jobs(conn: Conn, limit: int) -> list[Source]:
    """The oldest jobs still expanding."""
    rows = conn.execute(
        """SELECT j.id, j.list_id, m.id, m.message_id, m.sender, m.sender_name,
                  j.expanded_domain, j.expanded_to
           FROM outbound_jobs j JOIN messages m ON m.id = j.message_id
           WHERE j.state = 'pending' ORDER BY j.id LIMIT ?""",
        (limit,),
    ).fetchall()
    return [Source(r[0], r[1], r[2], r[3], r[4], r[5], (r[6], r[7])) for r in rows]


def add_batches(conn: Conn, job_id: int, batches: Iterable[tuple[str, ...]], at: str) -> int:
    rows = [("\n".join(b), job_id, at, at) for b in batches]
    if not rows:
        return 0
    conn.executemany(
        "INSERT INTO outbound_batches (recipients, job_id, next_attempt_at, created_at) "
        "VALUES (?, ?, ?, ?)",
        rows,
    )
    return len(rows)


def advance_job(
    conn: Conn,
    job_id: int,
    *,
    expanded_from: tuple[str, int],
    expanded_to: tuple[str, int],
    recipients: int,
    done: bool,
    shared: tuple[bool, str, bytes | None] | None = None,
) -> bool:
    """Move the job's cursor, only from where the slice was planned: False if it moved meanwhile
    (then the slice's batches must not be written). `shared` (personalized, envelope sender,
    rendered copy) is what every slice of the job uses, written with its first."""
    sets = "expanded_domain = ?, expanded_to = ?, recipients = recipients + ?, "
    sets += "state = CASE WHEN ? <> 0 THEN 'expanded' ELSE state END"
    values: list[object] = [*expanded_to, recipients, done]
    if shared is not None:
        sets += ", personalized = ?, envelope_from = ?, rendered = ?"
        values += [int(shared[0]), shared[1], shared[2]]
    return (
        conn.execute(
            f"UPDATE outbound_jobs SET {sets} "
            "WHERE id = ? AND state = 'pending' AND expanded_domain = ? AND expanded_to = ?",
            (*values, job_id, *expanded_from),
        ).rowcount
        == 1
    )


def claim(conn: Conn, now: str, lease_until: str, limit: int) -> list[Batch]:
    """Due batches, marked `sending` in the caller's transaction until `lease_until`. A batch
    whose sender died or hung past its lease is due again (next_attempt_at is the lease)."""
    rows = conn.execute(
        "SELECT id, job_id, recipients, attempts, created_at FROM outbound_batches "
        "WHERE state IN ('pending', 'deferred', 'sending') AND next_attempt_at <= ? "
        f"ORDER BY next_attempt_at, id LIMIT ?{engine.skip_locked(conn)}",
        (now, limit),
    ).fetchall()
    if rows:
        owner = engine.owner(conn)
        conn.executemany(
            "UPDATE outbound_batches SET state = 'sending', next_attempt_at = ?, claimed_by = ? "
            "WHERE id = ?",
            [(lease_until, owner, r[0]) for r in rows],
        )
    return [Batch(r[0], r[1], tuple(r[2].split("\n")), r[3], r[4]) for r in rows]


def release(conn: Conn, batch_ids: Iterable[int], now: str) -> None:
    """Claimed batches a sender will not get to: due again at once, for any sender."""
    conn.executemany(
        "UPDATE outbound_batches SET state = 'pending', next_attempt_at = ? "
        "WHERE id = ? AND state = 'sending'",
        [(now, i) for i in batch_ids],
    )


def job_copy(conn: Conn, job_id: int) -> JobCopy | None:
    row = conn.execute(
        "SELECT list_id, personalized, envelope_from, rendered, message_id, notice "
        "FROM outbound_jobs WHERE id = ?",
        (job_id,),
    ).fetchone()
    return JobCopy(row[0], bool(row[1]), row[2], row[3], row[4], bool(row[5])) if row else None


@dataclass(frozen=True, slots=True)
class Post:
    """A post as its copies are made from it."""

    message_id: str
    raw: bytes
    sender: str
    verified: bool  # passed its From domain's DMARC (or none is published)
    author_policy: str  # that domain's p= on receipt (DMARC mitigation)
    auth: str  # the results on receipt, RFC 8601 style (ARC sealing)


def message_source(conn: Conn, message_row: int) -> Post | None:
    row = conn.execute(
        "SELECT message_id, raw, sender, verified, author_policy, auth FROM messages WHERE id = ?",
        (message_row,),
    ).fetchone()
    return Post(row[0], row[1], row[2], bool(row[3]), row[4], row[5]) if row else None


def mark_sent(conn: Conn, batch_id: int, at: str) -> None:
    engine.defer(
        conn,
        "UPDATE outbound_batches SET state = 'sent', done_at = ?, last_error = '' WHERE id = ?",
        (at, batch_id),
    )


def mark_deferred(
    conn: Conn,
    batch_id: int,
    recipients: Iterable[str],
    attempts: int,
    next_at: str,
    error: str,
    at: str,
) -> None:
    conn.execute(
        "UPDATE outbound_batches SET state = 'deferred', recipients = ?, attempts = ?, "
        "next_attempt_at = ?, last_error = ?, last_error_at = ? WHERE id = ?",
        ("\n".join(recipients), attempts, next_at, error[:500], at, batch_id),
    )


def mark_failed(conn: Conn, batch_id: int, recipients: Iterable[str], error: str, at: str) -> None:
    conn.execute(
        "UPDATE outbound_batches SET state = 'failed', recipients = ?, last_error = ?, "
        "last_error_at = ?, done_at = ? WHERE id = ?",
        ("\n".join(recipients), error[:500], at, at, batch_id),
    )


def record_failures(
    conn: Conn, job_id: int, list_id: int, failures: Iterable[tuple[str, str]], at: str
) -> None:
    conn.executemany(
        "INSERT INTO delivery_failures (job_id, list_id, address, reply, at) VALUES (?, ?, ?, ?, ?)",
        [(job_id, list_id, address, reply[:500], at) for address, reply in failures],
    )


def fail_job(conn: Conn, job_id: int, error: str) -> None:
    conn.execute(
        "UPDATE outbound_jobs SET state = 'failed', last_error = ? WHERE id = ?",
        (error[:500], job_id),
    )


def reset_sending(conn: Conn, now: str) -> int:
    """At start-up: a batch whose sender died may or may not have arrived; it is due again at
    once (its lease no longer means anything). On SQLite the one process is the one that died:
    every claim is reset. On PostgreSQL, the claims of the processes that are gone."""
    if engine.postgres(conn):
        return reclaim_dead(conn, now)
    return conn.execute(
        "UPDATE outbound_batches SET state = 'pending', next_attempt_at = ? WHERE state = 'sending'",
        (now,),
    ).rowcount


def reclaim_dead(conn: Conn, now: str) -> int:
    """While running, on PostgreSQL: the claims of processes that died (their advisory lock is
    free) are due again at once; live ones keep theirs. A process that hangs but lives loses
    its claims only when their lease runs out. Nothing to do on SQLite (one process)."""
    if not engine.postgres(conn):
        return 0
    owners = [int(r[0]) for r in conn.execute(
        "SELECT DISTINCT claimed_by FROM outbound_batches WHERE state = 'sending'"
    ).fetchall()]  # fmt: skip
    return sum(
        conn.execute(
            "UPDATE outbound_batches SET state = 'pending', next_attempt_at = ? "
            "WHERE state = 'sending' AND claimed_by = ?",
            (now, number),
        ).rowcount
        for number in engine.dead_owners(conn, owners)
    )
