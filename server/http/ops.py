"""Operator endpoints: /healthz and /metrics."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.http.common import services_of
from server.metrics import CONTENT_TYPE_LATEST


async def healthz(request: Request) -> Response:
    services = services_of(request)
    storage = await services.database.health()
    broker = await services.broker.health()
    healthy = bool(storage.get("ok")) and bool(broker.get("ok"))
    return JSONResponse(
        {
            "status": "ok" if healthy else "degraded",
            "node": services.settings.effective_node_name,
            "storage": storage,
            "broker": broker,
            "connections": len(services.hub),
        },
        status_code=200 if healthy else 503,
    )


async def metrics(request: Request) -> Response:
    return Response(services_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
