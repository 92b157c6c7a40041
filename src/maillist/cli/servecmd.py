"""`maillist serve`'s options. Kept apart from the wiring (cli/serve.py) so that the command line
loads the server only when it is asked to serve (`maillist --help` stays quick)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from maillist.config import LEASE_SECONDS


def serve_command(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(envvar="MAILLIST_HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(envvar="MAILLIST_PORT", min=0, max=65535, help="Port (0 picks a free one)."),
    ] = 8025,
    lmtp: Annotated[
        bool,
        typer.Option(
            "--lmtp", envvar="MAILLIST_LMTP", help="Speak LMTP (RFC 2033), as Postfix expects."
        ),
    ] = False,
    hostname: Annotated[
        str | None,
        typer.Option(
            envvar="MAILLIST_HOSTNAME", help="Name in the greeting (default: this host's FQDN)."
        ),
    ] = None,
    max_sessions: Annotated[
        int,
        typer.Option(envvar="MAILLIST_MAX_SESSIONS", min=1, help="Concurrent sessions before 421."),
    ] = 100,
    max_sessions_per_client: Annotated[
        int,
        typer.Option(
            envvar="MAILLIST_MAX_SESSIONS_PER_CLIENT",
            min=1,
            help="Concurrent sessions from one client address before 421 (Postfix's LMTP "
            "client opens up to 20).",
        ),
    ] = 20,
    max_recipients: Annotated[
        int,
        typer.Option(envvar="MAILLIST_MAX_RECIPIENTS", min=1, help="RCPTs per message before 452."),
    ] = 50,
    timeout: Annotated[
        float,
        typer.Option(
            envvar="MAILLIST_TIMEOUT", min=1, help="Idle seconds before a session is closed."
        ),
    ] = 60.0,
    session_seconds: Annotated[
        float,
        typer.Option(envvar="MAILLIST_SESSION_SECONDS", min=1, help="Longest a session may last."),
    ] = 600.0,
    parse_seconds: Annotated[
        float,
        typer.Option(
            envvar="MAILLIST_PARSE_SECONDS",
            min=0,
            help="Time budget for parsing one message before 554.",
        ),
    ] = 2.0,
    parse_workers: Annotated[
        int,
        typer.Option(
            envvar="MAILLIST_PARSE_WORKERS",
            min=1,
            max=64,
            help="Processes that parse multipart and large messages (each under --parse-seconds).",
        ),
    ] = 2,
    relay: Annotated[
        str | None,
        typer.Option(
            envvar="MAILLIST_RELAY",
            help="Send copies through this MTA, HOST:PORT (default: the --outbox Maildir).",
        ),
    ] = None,
    relay_starttls: Annotated[
        bool, typer.Option(envvar="MAILLIST_RELAY_STARTTLS", help="Use STARTTLS to the relay.")
    ] = False,
    relay_user: Annotated[
        str,
        typer.Option(
            envvar="MAILLIST_RELAY_USER",
            help="AUTH user for the relay (password from $MAILLIST_RELAY_PASSWORD).",
        ),
    ] = "",
    outbox: Annotated[
        Path,
        typer.Option(envvar="MAILLIST_OUTBOX", help="Maildir for copies when no --relay is given."),
    ] = Path("var/outbox"),
    connections: Annotated[
        int,
        typer.Option(
            envvar="MAILLIST_CONNECTIONS", min=1, max=64, help="Parallel relay connections."
        ),
    ] = 4,
    give_up: Annotated[
        float,
        typer.Option(
            envvar="MAILLIST_GIVE_UP", min=0.01, help="Hours to keep retrying a deferred delivery."
        ),
    ] = 120.0,
    templates: Annotated[
        Path | None,
        typer.Option(
            envvar="MAILLIST_TEMPLATES", help="Directory of templates overriding the built-in ones."
        ),
    ] = None,
    http_port: Annotated[
        int | None,
        typer.Option(
            envvar="MAILLIST_HTTP_PORT",
            min=0,
            max=65535,
            help="Serve the web archive, one-click unsubscribe links and /metrics on this port.",
        ),
    ] = None,
    http_host: Annotated[
        str, typer.Option(envvar="MAILLIST_HTTP_HOST", help="Address for --http-port.")
    ] = "127.0.0.1",
    lease: Annotated[
        float,
        typer.Option(
            envvar="MAILLIST_LEASE",
            min=5,
            help="Seconds a claimed batch stays this process's. With several processes on one "
            "PostgreSQL database: one that hangs loses its batches after this long (one that "
            "dies, within seconds).",
        ),
    ] = LEASE_SECONDS,
    drain_seconds: Annotated[
        float,
        typer.Option(
            envvar="MAILLIST_DRAIN_SECONDS",
            min=1,
            help="On SIGTERM/SIGINT, how long open sessions and sends may take to finish.",
        ),
    ] = 30.0,
    notices_per_address: Annotated[
        int,
        typer.Option(
            envvar="MAILLIST_NOTICES_PER_ADDRESS",
            min=1,
            help="Confirmations, refusals and command results one address may get per hour.",
        ),
    ] = 5,
    notices_per_client: Annotated[
        int,
        typer.Option(
            envvar="MAILLIST_NOTICES_PER_CLIENT",
            min=1,
            help="Notices one connecting client address may prompt per hour, all lists.",
        ),
    ] = 30,
    dns: Annotated[
        str,
        typer.Option(
            envvar="MAILLIST_DNS",
            help="DNS resolver for DKIM keys and DMARC policies, HOST:PORT (default: the system's).",
        ),
    ] = "",
    trusted_authserv: Annotated[
        str,
        typer.Option(
            envvar="MAILLIST_TRUSTED_AUTHSERV",
            help="authserv-id of the MTA in front (e.g. Postfix with OpenDKIM/OpenDMARC) whose "
            "topmost Authentication-Results count; it must remove any the sender wrote.",
        ),
    ] = "",
    trusted_arc: Annotated[
        list[str] | None,
        typer.Option(
            envvar="MAILLIST_TRUSTED_ARC",
            help="An ARC sealer domain whose passing chain proves a post (repeatable).",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            envvar="MAILLIST_TLS_CERT",
            help="Offer STARTTLS with this certificate chain (PEM), when maillist is the MX "
            "itself; re-read on SIGHUP.",
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(envvar="MAILLIST_TLS_KEY", help="The private key (PEM) of --tls-cert."),
    ] = None,
    log_level: Annotated[
        str, typer.Option(envvar="MAILLIST_LOG_LEVEL", help="debug, info, warning or error.")
    ] = "info",
) -> None:
    """Receive mail for the lists over SMTP (or LMTP), store it durably, thread it and decide its fate."""
    from maillist.cli import serve  # the server, loaded now

    serve.start(
        ctx,
        serve.ServeOptions(
            host=host,
            port=port,
            lmtp=lmtp,
            hostname=hostname,
            max_sessions=max_sessions,
            max_sessions_per_client=max_sessions_per_client,
            max_recipients=max_recipients,
            timeout=timeout,
            session_seconds=session_seconds,
            parse_seconds=parse_seconds,
            parse_workers=parse_workers,
            relay=relay,
            relay_starttls=relay_starttls,
            relay_user=relay_user,
            outbox=outbox,
            connections=connections,
            give_up=give_up,
            templates=templates,
            http_port=http_port,
            http_host=http_host,
            lease=lease,
            drain_seconds=drain_seconds,
            notices_per_address=notices_per_address,
            notices_per_client=notices_per_client,
            dns=dns,
            trusted_authserv=trusted_authserv,
            trusted_arc=trusted_arc,
            tls_cert=tls_cert,
            tls_key=tls_key,
            log_level=log_level,
        ),
    )
