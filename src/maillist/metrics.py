"""Counters for /metrics, in one registry per server (no global state): what arrived, what was
decided, what was delivered. Queue depth is read from the database at each scrape."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from maillist.models import BatchState


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.received = Counter(
            "maillist_messages_received", "Messages stored, by recipient kind (post, request, ...).",
            ["kind"], registry=self.registry,
        )  # fmt: skip
        self.posts = Counter(
            "maillist_posts", "Posts by verdict: accept, hold, discard, duplicate.",
            ["verdict"], registry=self.registry,
        )  # fmt: skip
        self.refused = Counter(
            "maillist_messages_refused", "Messages refused with a 4xx/5xx after DATA.",
            registry=self.registry,
        )  # fmt: skip
        self.deliveries = Counter(
            "maillist_deliveries", "Recipient deliveries by outcome: sent, deferred, failed.",
            ["outcome"], registry=self.registry,
        )  # fmt: skip
        self.queue = Gauge(
            "maillist_queue_batches", "Outbound batches by state (one SMTP transaction each).",
            ["state"], registry=self.registry,
        )  # fmt: skip
        self.queue_recipients = Gauge(
            "maillist_queue_recipients", "Recipients in outbound batches, by state.",
            ["state"], registry=self.registry,
        )  # fmt: skip
        for outcome in (BatchState.SENT, BatchState.DEFERRED, BatchState.FAILED):
            self.deliveries.labels(outcome)
        for verdict in ("accept", "hold", "discard", "duplicate"):
            self.posts.labels(verdict)

    def set_queue(self, counts: dict[str, tuple[int, int]]) -> None:
        for state in BatchState:
            batches, recipients = counts.get(state, (0, 0))
            self.queue.labels(state).set(batches)
            self.queue_recipients.labels(state).set(recipients)

    def render(self) -> bytes:
        return generate_latest(self.registry)
