"""An SMTP sink for tests: records every envelope and message, can refuse or slow down."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpts: list[str]
    data: bytes
    mail_options: tuple[str, ...] = ()


@dataclass
class Sink:
    refuse: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    pipelining: bool = True  # announce RFC 2920 PIPELINING, as Postfix does
    mail_reply: str = ""  # refuse MAIL FROM with this reply
    data_reply: str = ""  # refuse the message after DATA with this reply
    received: list[Received] = field(default_factory=list)
    port: int = 0  # set while it runs
    cond: threading.Condition = field(default_factory=threading.Condition)

    async def handle_EHLO(
        self, server: Any, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.refuse.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.data_reply:
            return self.data_reply
        with self.cond:
            self.received.append(
                Received(
                    envelope.mail_from or "",
                    list(envelope.rcpt_tos),
                    envelope.original_content or b"",
                    tuple(envelope.mail_options),
                )
            )
            self.cond.notify_all()
        return "250 2.0.0 OK"

    def rcpts(self) -> list[str]:
        with self.cond:
            return [r for m in self.received for r in m.rcpts]

    def wait(self, predicate: Callable[[Sink], bool], timeout: float = 30.0) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(
                    f"sink: condition not met in {timeout}s; got {len(self.received)} messages"
                )


class RunningSink:
    def __init__(self, sink: Sink, port: int | None = None, *, smtputf8: bool = False) -> None:
        self.sink = sink
        self.port = port or free_port()
        self.controller = Controller(
            sink, hostname="127.0.0.1", port=self.port, ready_timeout=10, enable_SMTPUTF8=smtputf8
        )

    def __enter__(self) -> Sink:
        self.controller.start()
        self.sink.port = self.port
        return self.sink

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
