"""maillist: an email discussion-list server."""

__version__ = "0.1.0"
