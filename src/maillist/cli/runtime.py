"""What every command shares: the Config from the global options, and running a service call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer

from maillist.config import Config

if TYPE_CHECKING:
    from maillist.db.store import Store

T = TypeVar("T")


def config(ctx: typer.Context) -> Config:
    obj = ctx.find_root().obj
    assert isinstance(obj, Config), "the root callback sets the Config"
    return obj


def run(
    ctx: typer.Context,
    call: Callable[[Store, Config], Awaitable[T]],
    *,
    create: bool = False,
    location: Path | str | None = None,
) -> T:
    """Open the database (`location`, else the configured one), run one service call on it,
    close it. Errors propagate to main(). Only the commands that start a site (`lists create`,
    `demo`, `import`) create a missing database."""
    cfg = config(ctx)

    import asyncio

    from maillist.services.database import open_site  # loaded by the commands that need it

    async def go() -> T:
        db = await open_site(location or cfg.db, create=create)
        try:
            return await call(db, cfg)
        finally:
            await db.close()

    return asyncio.run(go())
