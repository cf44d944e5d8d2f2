"""`ApiServer`: uvicorn serving the API, which answers the requests it holds when it stops."""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from config.settings import Settings


class ApiServer(uvicorn.Server):
    """On SIGTERM a `GET` waiting for a status answers at once with what it would show at its
    end, instead of holding the stop up to 30 s. Other calls get as long as a lifecycle change
    may take (`update_timeout_seconds`, and a margin); what still runs then (a followed log
    has no end) is cut off."""

    def __init__(self, app: FastAPI, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.app = app

    @classmethod
    def for_settings(cls, settings: Settings) -> ApiServer:
        app = create_app(settings)
        config = uvicorn.Config(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,
            proxy_headers=False,
            timeout_graceful_shutdown=int(settings.update_timeout_seconds) + 5,
        )
        return cls(app, config)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        context = getattr(self.app.state, "context", None)  # None: stopped while starting
        if context is not None:
            context.status_watch.release_all()
        await super().shutdown(sockets)
