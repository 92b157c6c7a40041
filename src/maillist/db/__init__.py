"""The storage layer: the only place that holds SQL. Services pass an opaque `Conn` through."""

from maillist.db.store import Conn, Store

__all__ = ["Conn", "Store"]
