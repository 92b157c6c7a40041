"""The web archive's routes on the Starlette app (web/app.py): pages from templates/archive/,
the raw bytes, attachments, pictures, feeds and a thread's mbox, and signing in by email.

Every response carries a strict Content-Security-Policy (no script at all, styles and images
from this site only), `X-Content-Type-Options: nosniff` and no referrer to other sites; a private
list's pages are never cached by anyone but the reader."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from maillist import clock, urls
from maillist.db.store import Store
from maillist.errors import BadToken, NotFound, SignInRequired, Unavailable
from maillist.mail import mboxes
from maillist.services import archive as svc
from maillist.services import signin
from maillist.services.notify import Notifier
from maillist.templating import Templates, default_dir
from maillist.web.guard import LOOPBACK
from maillist.web.limits import Window

COOKIE = "maillist_session"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
MAX_FORM = 4096
_PART = re.compile(r"^(.*)/part/(\d{1,4})$")


SIGNINS_PER_CLIENT = 10  # sign-in requests one client may make an hour


@dataclass(frozen=True, slots=True)
class Site:
    """What the archive's endpoints share (app.state.site, set by web/app.py)."""

    db: Store
    pages: Templates
    notifier: Notifier
    archive: svc.Archive
    stylesheet: bytes = field(
        default_factory=lambda: (default_dir() / "archive" / "archive.css").read_bytes()
    )
    signins: Window = field(default_factory=lambda: Window(SIGNINS_PER_CLIENT, 3600.0))


def _site(request: Request) -> Site:
    site = request.app.state.site
    assert isinstance(site, Site)
    return site


async def viewer_of(request: Request) -> str:
    return await signin.viewer(_site(request).db, request.cookies.get(COOKIE, ""))


def html(name: str, request: Request, viewer: str, status: int = 200, **context: Any) -> Response:
    body = _site(request).pages.page(f"archive/{name}", viewer=viewer, static=False, **context)
    return HTMLResponse(body, status_code=status, headers=_headers(viewer))


def guarded(
    view: Callable[[Request, str], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        viewer = await viewer_of(request)
        try:
            return await view(request, viewer)
        except NotFound as exc:
            return html("message.html.j2", request, viewer, 404, heading="Not found",
                        text=str(exc), signin=False, next="", join="")  # fmt: skip
        except SignInRequired as exc:
            listed = request.path_params.get("list", "")
            return html("message.html.j2", request, viewer, 403, heading="Members only",
                        text=str(exc), signin=True, next=request.url.path,
                        join=f"{urls.list_url(listed)}join" if listed else "")  # fmt: skip
        except Unavailable as exc:
            return html("message.html.j2", request, viewer, 503, heading="Not available",
                        text=str(exc), signin=False, next="", join="")  # fmt: skip

    return run


@guarded
async def lists_page(request: Request, viewer: str) -> Response:
    site = _site(request)
    return html("lists.html.j2", request, viewer, lists=await site.archive.lists(viewer))


@guarded
async def threads_page(request: Request, viewer: str) -> Response:
    site = _site(request)
    page = request.query_params.get("page", "1")
    number = int(page) if page.isdigit() and len(page) < 7 else 1
    found = await site.archive.threads(request.path_params["list"], viewer, number)
    return html("threads.html.j2", request, viewer, page=found)


@guarded
async def thread_page(request: Request, viewer: str) -> Response:
    site = _site(request)
    spec = request.path_params["spec"]
    address = request.path_params["list"]
    number, _, kind = spec.partition(".")
    if not number.isdigit() or len(number) > 12:
        raise NotFound(f"no thread {spec[:40]!r}")
    if kind == "mbox":
        raws = await site.archive.thread_raws(address, int(number), viewer)
        return _download(mboxes.mboxrd(raws), "application/mbox", f"thread-{number}.mbox", viewer)
    if kind == "atom":
        mlist, posts = await site.archive.latest(address, viewer, int(number))
        return _feed(site.pages, request, viewer, mlist, f"{mlist.name}: thread {number}",
                     posts, urls.thread_url(mlist.address, int(number)))  # fmt: skip
    if kind:
        raise NotFound(f"no thread {spec[:40]!r}")
    found = await site.archive.thread(address, int(number), viewer)
    return html("thread.html.j2", request, viewer, page=found, highlight=0)


@guarded
async def message_page(request: Request, viewer: str) -> Response:
    site = _site(request)
    address = request.path_params["list"]
    rest = request.path_params["rest"]
    part = _PART.match(rest)
    if rest.endswith("/raw"):
        raw = await site.archive.raw(address, rest[: -len("/raw")], viewer)
        headers = {**_headers(viewer), "Content-Disposition": "inline"}
        return Response(raw, media_type="text/plain; charset=utf-8", headers=headers)
    if part is not None:
        data, kind, name = await site.archive.part(
            address, part.group(1), int(part.group(2)), viewer
        )
        return _download(data, kind, name, viewer)
    # The permalink (what every copy's Archived-At names) lands on the post itself: its
    # thread, scrolled to it and marked (CSS :target), on a phone as on a desktop.
    thread_id, row = await site.archive.locate(address, rest, viewer)
    target = f"{urls.thread_url(address, thread_id)}#m{row}"
    return RedirectResponse(target, status_code=303, headers=_headers(viewer))


@guarded
async def join_page(request: Request, viewer: str) -> Response:
    site = _site(request)
    found = await site.archive.joining(request.path_params["list"])
    return html("join.html.j2", request, viewer, page=found)


@guarded
async def month_page(request: Request, viewer: str) -> Response:
    site = _site(request)
    year, month = int(request.path_params["year"]), int(request.path_params["month"])
    if not (1 <= month <= 12 and 1970 <= year <= 9999):
        raise NotFound("no such month")
    mlist, posts = await site.archive.month(request.path_params["list"], year, month, viewer)
    return html("month.html.j2", request, viewer, mlist=mlist, posts=posts, year=year,
                month=month)  # fmt: skip


@guarded
async def search_page(request: Request, viewer: str) -> Response:
    site = _site(request)
    query = request.query_params.get("q", "")[:200]
    mlist, hits = await site.archive.search(request.path_params["list"], query, viewer)
    return html("search.html.j2", request, viewer, mlist=mlist, hits=hits, query=query)


@guarded
async def list_feed(request: Request, viewer: str) -> Response:
    site = _site(request)
    mlist, posts = await site.archive.latest(request.path_params["list"], viewer)
    return _feed(site.pages, request, viewer, mlist, mlist.name, posts, mlist.url)


@guarded
async def picture(request: Request, viewer: str) -> Response:
    site = _site(request)
    found = await site.archive.picture(request.path_params["key"])
    if found is None:
        raise NotFound("no such picture")
    data, kind = found
    headers = {**SECURITY, "Cache-Control": "public, max-age=31536000, immutable"}
    return Response(data, media_type=kind, headers=headers)


async def css(request: Request) -> Response:
    site = _site(request)
    return Response(site.stylesheet, media_type="text/css", headers={
        **SECURITY, "Cache-Control": "public, max-age=3600"})  # fmt: skip


async def badges_css(request: Request) -> Response:
    site = _site(request)
    return Response(await site.archive.badge_css(), media_type="text/css", headers={
        **SECURITY, "Cache-Control": "public, max-age=300"})  # fmt: skip


async def signin_page(request: Request) -> Response:
    site = _site(request)
    viewer = await viewer_of(request)
    next_path = _local(request.query_params.get("next", ""))
    if not await signin.possible(site.db):  # said to everyone alike: it reveals no member
        return html("signin.html.j2", request, viewer, state="unavailable", next="")
    if request.method == "GET":
        return html("signin.html.j2", request, viewer, state="ask", next=next_path)
    form = await _form(request)
    address = form.get("address", "")[:254]
    client = request.client.host if request.client else ""
    response = html("signin.html.j2", request, viewer, state="sent",
                    address=signin.shown(address), minutes=signin.LINK_MINUTES,
                    next=next_path)  # fmt: skip
    # The work after the answer: its time says nothing. A client may ask ten times an hour
    # (not one on loopback: a proxy in front that names no client speaks for everyone).
    if client in LOOPBACK or site.signins.allow(client):
        response.background = BackgroundTask(
            signin.request,
            site.db,
            site.notifier,
            address,
            _local(form.get("next", "")),
            client,
        )
    return response


async def signin_link(request: Request) -> Response:
    site = _site(request)
    viewer = await viewer_of(request)
    token = request.path_params["token"]
    next_path = _local(request.query_params.get("next", ""))
    try:
        if request.method == "GET":
            address = await signin.pending(site.db, token)
            return html("signin.html.j2", request, viewer, state="confirm", address=address,
                        next=next_path)  # fmt: skip
        form = await _form(request)
        _, cookie = await signin.sign_in(site.db, token)
    except BadToken:
        return html("signin.html.j2", request, viewer, 400, state="invalid", next="")
    response = RedirectResponse(_local(form.get("next", "")) or "/", status_code=303)
    response.set_cookie(COOKIE, cookie, max_age=signin.SESSION_DAYS * 86400, httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")  # fmt: skip
    return response


async def signout(request: Request) -> Response:
    site = _site(request)
    await signin.sign_out(site.db, request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE)
    return response


ROUTES = [
    Route("/", lists_page),
    Route("/static/archive.css", css),
    Route("/static/badges.css", badges_css),
    Route("/pictures/{key}", picture),
    Route("/signin", signin_page, methods=["GET", "POST"]),
    Route("/signin/{token}", signin_link, methods=["GET", "POST"]),
    Route("/signout", signout, methods=["POST"]),
    Route("/lists/{list}/", threads_page),
    Route("/lists/{list}/feed.atom", list_feed),
    Route("/lists/{list}/join", join_page),
    Route("/lists/{list}/search", search_page),
    Route("/lists/{list}/thread/{spec}", thread_page),
    Route("/lists/{list}/msg/{rest:path}", message_page),
    Route("/lists/{list}/{year:int}/{month:int}/", month_page),
]


def _headers(viewer: str) -> dict[str, str]:
    cache = "private, no-store" if viewer else "public, max-age=60"
    return {**SECURITY, "Cache-Control": cache}


def _local(path: str) -> str:
    """Only a path on this site may be a redirect target (no open redirect)."""
    text = unquote(path)
    if not text.startswith("/") or text.startswith("//") or "\\" in text or len(text) > 500:
        return ""
    return quote(text, safe="/@!$&()*+,;=:-._~?%")


async def bounded_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None past `limit` bytes (read no further)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return body


async def _form(request: Request) -> dict[str, str]:
    body = await bounded_body(request, MAX_FORM)
    if body is None:
        return {}
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def _download(data: bytes, kind: str, name: str, viewer: str) -> Response:
    safe = re.sub(r"[^A-Za-z0-9._ -]", "_", name)[:120] or "attachment"
    headers = {
        **_headers(viewer),
        "Content-Disposition": f"attachment; filename=\"{safe}\"; filename*=UTF-8''{quote(name)}",
    }
    # Served as what it says it is, but never rendered in place (attachment, nosniff, CSP).
    media = kind if re.fullmatch(r"[a-z0-9.+-]+/[a-z0-9.+-]+", kind) else "application/octet-stream"
    return Response(data, media_type=media, headers=headers)


def _feed(
    pages: Templates,
    request: Request,
    viewer: str,
    mlist: svc.ListEntry,
    title: str,
    posts: list[svc.PostView],
    alternate: str,
) -> Response:
    """Atom wants absolute links: on the list's web_url when an admin set one. Without one they
    follow the Host the reader asked for, so such a feed is never cached for anyone else (a
    cache would serve one visitor's forged Host to the next)."""
    base = mlist.web_url.rstrip("/") or f"{request.url.scheme}://{request.url.netloc}"
    updated = max((p.date for p in posts), default=clock.stamp())
    body = pages.page("archive/feed.atom.j2", title=title, posts=posts, base=base,
                      self_path=request.url.path, alternate=alternate, updated=updated)  # fmt: skip
    headers = {**_headers(viewer)}
    if not mlist.web_url:
        headers["Cache-Control"] = "private, no-store"
    return Response(body, media_type="application/atom+xml; charset=utf-8", headers=headers)
