"""What a relay said about one SMTP transaction, recipient by recipient. Pure.

The transport (delivery/relay.py, delivery/pipelining.py) makes these; services/deliveries.py
records them. Neither imports the other: both import this."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Result:
    """What the relay said about one transaction: who got it, who must wait, who was refused."""

    sent: tuple[str, ...]
    deferred: tuple[tuple[str, str], ...] = ()  # (address, reply)
    failed: tuple[tuple[str, str], ...] = ()


def classify(recipients: Sequence[str], refused: dict[str, tuple[int, str]]) -> Result:
    """Per-recipient replies to a transaction whose DATA went through: 4xx waits, 5xx fails."""
    sent: list[str] = []
    deferred: list[tuple[str, str]] = []
    failed: list[tuple[str, str]] = []
    for r in recipients:
        if r not in refused:
            sent.append(r)
            continue
        code, text = refused[r]
        (failed if code >= 500 else deferred).append((r, f"{code} {text}"))
    return Result(tuple(sent), tuple(deferred), tuple(failed))


def everyone(recipients: Sequence[str], reply: str, *, temporary: bool) -> Result:
    """The same outcome for every recipient (relay down, MAIL FROM or DATA refused)."""
    pairs = tuple((r, reply) for r in recipients)
    return Result(sent=(), deferred=pairs) if temporary else Result(sent=(), failed=pairs)


def merged(results: Sequence[Result]) -> Result:
    """Several transactions' results as one (a personalised batch: one transaction a member)."""
    return Result(
        tuple(r for result in results for r in result.sent),
        tuple(d for result in results for d in result.deferred),
        tuple(f for result in results for f in result.failed),
    )
