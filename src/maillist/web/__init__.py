"""HTTP side of `maillist serve` (--http-port): /metrics now, the archive later."""
