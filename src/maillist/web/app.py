"""The Starlette app: /metrics (Prometheus), /healthz, the one-click unsubscribe page and the
web archive."""

from __future__ import annotations

from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from maillist.db.store import Store
from maillist.errors import BadToken
from maillist.metrics import Metrics
from maillist.services import queue as queue_service
from maillist.services import unsubscribe as unsubscribe_service
from maillist.services.archive import Archive
from maillist.services.notify import Notifier
from maillist.services.sandbox import Sandbox
from maillist.templating import Templates
from maillist.web.archive import ROUTES as ARCHIVE_ROUTES
from maillist.web.archive import SECURITY, Site, bounded_body

MAX_FORM_BYTES = 8192
LOOPBACK = frozenset({"127.0.0.1", "::1"})
ONE_CLICK = ("List-Unsubscribe", "One-Click")


def build(
    db: Store,
    metrics: Metrics,
    templates: Templates | None = None,
    notifier: Notifier | None = None,
    display: Sandbox | None = None,
) -> Starlette:
    """/metrics, /healthz, one-click unsubscribe, and the web archive (web/archive.py), whose
    rendering runs in `display` (the caller closes it)."""
    pages = templates or Templates()
    archive = Archive(db, display)

    async def scrape(request: Request) -> Response:
        """For a scraper on this host only: the queue's figures are nobody else's business.
        (Behind a proxy on loopback the client is the one the proxy names, so it is refused.)"""
        proxied = any(h in request.headers for h in ("x-forwarded-for", "forwarded", "x-real-ip"))
        if proxied or request.client is None or request.client.host not in LOOPBACK:
            return PlainTextResponse("not found\n", status_code=404)
        view = await queue_service.view(db, limit=1)
        metrics.set_queue(view.counts)
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    def page(state: str, status: int = 200, **context: object) -> Response:
        context = {"list": None, "address": "", **context}
        html = pages.page("web/unsubscribe.html.j2", state=state, **context)
        headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        return HTMLResponse(html, status_code=status, headers=headers)

    async def unsubscribe(request: Request) -> Response:
        """RFC 8058: a GET (what link scanners send) shows a page and changes nothing; a POST
        with `List-Unsubscribe=One-Click` unsubscribes at once. A bad token gets 400."""
        list_address = request.path_params["list_address"]
        token = request.path_params["token"]
        try:
            if request.method == "GET":
                found = await unsubscribe_service.check(db, list_address, token)
                state = "confirm" if found.subscribed else "gone"
                return page(state, list=found.mlist, address=found.address)
            if not await _one_click(request):
                return page("invalid", 400)
            done = await unsubscribe_service.unsubscribe(db, list_address, token, actor="one-click")
        except BadToken:
            return page("invalid", 400)
        return page("done" if done.subscribed else "gone", list=done.mlist, address=done.address)

    app = Starlette(
        middleware=[Middleware(SecurityHeaders)],
        routes=[
            Route("/metrics", scrape),
            Route("/healthz", healthz),
            Route("/unsubscribe/{list_address}/{token}", unsubscribe, methods=["GET", "POST"]),
            *ARCHIVE_ROUTES,
        ],
    )
    app.state.site = Site(db, pages, notifier or Notifier(pages), archive)
    return app


class SecurityHeaders:
    """Every response of this port (pages, errors, /metrics, the unsubscribe page) carries the
    archive's Content-Security-Policy, framing and sniffing headers, unless it set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def guarded(message: AsgiMessage) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, guarded)


async def _one_click(request: Request) -> bool:
    """Whether the POST body carries List-Unsubscribe=One-Click (urlencoded or multipart)."""
    body = await bounded_body(request, MAX_FORM_BYTES)
    if body is None:
        return False
    kind = request.headers.get("content-type", "").lower()
    if kind.startswith("multipart/form-data"):
        head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode("latin-1")
        form = BytesParser(policy=compat32).parsebytes(head + body)
        parts = form.get_payload() if form.is_multipart() else []
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, Message):
                continue
            name = part.get_param("name", header="content-disposition")
            value = part.get_payload(decode=True)
            wanted = name == ONE_CLICK[0] and isinstance(value, bytes)
            if wanted and isinstance(value, bytes) and value.strip() == ONE_CLICK[1].encode():
                return True
        return False
    fields = parse_qs(body.decode("utf-8", "replace"))
    return ONE_CLICK[1] in fields.get(ONE_CLICK[0], [])
