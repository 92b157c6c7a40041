"""The storage layer: the only place that holds SQL. Services pass an opaque `Tx` through."""

from maillist.db.connection import Database, Tx

__all__ = ["Database", "Tx"]
