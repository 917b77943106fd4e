"""The ASGI application: routes, error mapping and the node's lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from lien.protocol.errors import LienError
from server.broker import make_broker
from server.http import api, ops, web
from server.http.common import on_http_exception, on_lien_error, on_unexpected
from server.ledger_signer import LedgerSigner, load_or_create_key
from server.metrics import Metrics
from server.presence import make_presence
from server.ratelimit import make_password_limiter, make_rate_limiter
from server.retention import Policy, RetentionTask
from server.services import Services, now_ms
from server.settings import Settings
from server.storage.committer import GroupCommitter
from server.storage.database import Database
from server.storage.migrate import upgrade_to_head
from server.ws.connection import DeviceConnection
from server.ws.hub import Hub

logger = logging.getLogger(__name__)

DEVICE_SOCKET_PATH = "/ws"


class LienApp(Starlette):
    """Starlette, with the device socket served straight from the ASGI entry point.

    Every coroutine frame between uvicorn and the socket's handler lives as long
    as the socket does. Through the middleware stack (error and exception
    middleware, the security headers, the router, the route and Starlette's
    exception wrappers, twice) that was about 5 KiB per idle socket; none of it
    acts on a WebSocket that ``DeviceConnection`` does not already handle: it
    answers every client error itself, the security headers are for HTTP
    responses, and an unexpected exception reaches uvicorn's log either way.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == DEVICE_SOCKET_PATH:
            scope["app"] = self
            services: Services = self.state.services
            await DeviceConnection(services, WebSocket(scope, receive, send)).serve()
        else:
            await super().__call__(scope, receive, send)


def create_app(settings: Settings) -> LienApp:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        database = Database(settings.effective_database_url)
        if settings.migrate_on_start:
            await upgrade_to_head(database)
        broker = make_broker(settings.redis_url)
        presence = make_presence(settings.redis_url)
        hub = Hub()
        # One worker: the ledger head serialises appends anyway, and a second worker only made
        # batches smaller (more transactions, more CPU per message; docs/architecture.md).
        committer = GroupCommitter(database, workers=1)
        signer = LedgerSigner(
            database,
            load_or_create_key(settings.effective_ledger_key_file),
            interval=settings.ledger_sign_interval,
            clock=now_ms,
        )
        services = Services(
            settings=settings,
            database=database,
            committer=committer,
            broker=broker,
            presence=presence,
            metrics=Metrics(),
            hub=hub,
            signer=signer,
            rate_limiter=make_rate_limiter(
                settings.redis_url, rate=settings.message_rate, burst=settings.message_burst
            ),
            password_limiter=make_password_limiter(settings.redis_url),
        )
        committer.on_batch = services.metrics.commit_batch.observe
        services.metrics.gc_pauses.install()
        await broker.start()
        broker.on_resync(hub.resync)
        await presence.start()
        committer.start()
        signer.start()
        retention_task = RetentionTask(
            database,
            Policy(settings.message_max_age_days, settings.ledger_retention_days),
            interval=settings.retention_interval,
            clock=now_ms,
        )
        retention_task.start()
        app.state.services = services
        logger.info(
            "node %s ready (storage %s, broker %s)",
            settings.effective_node_name,
            database.dialect,
            "redis" if settings.redis_url else "in-process",
        )
        try:
            yield
        finally:
            logger.info("node %s shutting down", settings.effective_node_name)
            services.metrics.gc_pauses.remove()
            await hub.close_all()
            await signer.close()
            await retention_task.close()
            await services.rate_limiter.close()
            await services.password_limiter.close()
            await committer.close()
            await presence.close()
            await broker.close()
            await database.close()

    routes: list[BaseRoute] = [
        *api.routes,
        *ops.routes,
        *web.routes(settings.effective_web_dir),
    ]
    return LienApp(
        routes=routes,
        middleware=[Middleware(web.SecurityHeaders)],
        lifespan=lifespan,
        exception_handlers={
            LienError: on_lien_error,
            HTTPException: on_http_exception,
            Exception: on_unexpected,
        },
    )
