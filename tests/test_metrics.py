"""`maillist serve --http-port`: Prometheus metrics from the running server."""

from __future__ import annotations

import smtplib
import urllib.request
from pathlib import Path

from serverutil import Server, message
from test_delivery import setup_team, wait_until


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_metrics_count_posts_deliveries_and_queue(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    setup_team(db)
    srv = Server(db, "--http-port", "0")
    try:
        assert srv.http_port is not None
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as client:
            client.sendmail("anne@example.org", ["team@example.org"], message(message_id="met-1@x"))
            client.sendmail(
                "zed@example.net",
                ["team@example.org"],
                message(sender="zed@example.net", message_id="met-2@x"),
            )
            client.sendmail("anne@example.org", ["team@example.org"], message(message_id="met-1@x"))
        port = srv.http_port
        # Counted when the relay answers; the queue gauge follows when the result is committed.
        # Three copies of the accepted post, and zed's "your post awaits a moderator" notice.
        wait_until(
            lambda: (
                scrape(port).get('maillist_deliveries_total{outcome="sent"}') == 4
                and scrape(port).get('maillist_queue_recipients{state="sent"}') == 4
            )
        )
        values = scrape(port)
        assert values['maillist_posts_total{verdict="accept"}'] == 1
        assert values['maillist_posts_total{verdict="hold"}'] == 1
        assert values['maillist_posts_total{verdict="duplicate"}'] == 1
        assert values['maillist_messages_received_total{kind="post"}'] == 2
        assert values['maillist_queue_recipients{state="sent"}'] == 4
        assert values['maillist_queue_batches{state="pending"}'] == 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            assert response.read() == b"ok\n"
    finally:
        assert srv.stop() == 0
