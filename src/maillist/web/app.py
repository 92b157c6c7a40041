"""The Starlette app: /metrics in Prometheus text format and /healthz."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from maillist.metrics import Metrics
from maillist.services import queue as queue_service
from maillist.services.store import Store


def build(db: Store, metrics: Metrics) -> Starlette:
    async def scrape(request: Request) -> Response:
        view = await queue_service.view(db, limit=1)
        metrics.set_queue(view.counts)
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    return Starlette(routes=[Route("/metrics", scrape), Route("/healthz", healthz)])
