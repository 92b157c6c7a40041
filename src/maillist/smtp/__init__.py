"""SMTP and LMTP on our own event loop: protocol classes, limits, and the handler's hooks."""
