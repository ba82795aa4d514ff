"""How every service process runs: uvicorn, with a stop that drops no request.

    python -m shop_common.serve orders.main:create_app --host 127.0.0.1 --port 8003

uvicorn's own stop closes idle keep-alive connections at once, and the gateway may be sending a request on
one of them at that moment: it gets no answer, and nginx does not retry a POST elsewhere. So on SIGTERM this
server first stops accepting (a new connection is refused, and the gateway tries the next replica, which is
safe for any method, the request never having been sent), answers every request still coming on an open
connection with `Connection: close`, and leaves idle connections for the gateway to close itself (its
upstream keepalive_timeout is 5 s, deploy/generate.py). Only then does uvicorn's stop run: requests finish,
then the app's lifespan stops its consumers and relay. uvicorn has no hook for this, hence the subclass.
"""

from __future__ import annotations

import asyncio
import socket
import time

import typer
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

KEEP_ALIVE_SECONDS = 30  # longer than the gateway's upstream keepalive_timeout: the gateway closes idle ones first
DRAIN_SECONDS = 6.0  # the gateway's 5 s idle limit, and a moment for the last answers
GRACE_SECONDS = 10  # then requests still running are cancelled (the orchestrator kills at 15 s, or 30 s)


class Draining:
    """Set once the process is stopping; read by CloseWhenDraining."""

    started = False


class CloseWhenDraining:
    """Adds `Connection: close` to every answer once the process is stopping, so the gateway reuses no
    connection to it; uvicorn then closes each connection after its answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and Draining.started:
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, send_closing)


class DrainingServer(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        Draining.started = True
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        deadline = time.monotonic() + DRAIN_SECONDS
        while self.server_state.connections and time.monotonic() < deadline and not self.force_exit:
            await asyncio.sleep(0.05)
        await super().shutdown()


def main(
    app: str = typer.Argument(..., help="the service's app factory, e.g. orders.main:create_app"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
) -> None:
    config = uvicorn.Config(
        app, factory=True, host=host, port=port, access_log=False,  # the app logs each request itself
        timeout_keep_alive=KEEP_ALIVE_SECONDS, timeout_graceful_shutdown=GRACE_SECONDS,
    )
    DrainingServer(config).run()


if __name__ == "__main__":
    # Through the package's module, not this __main__ copy: the app's CloseWhenDraining reads that one's Draining.
    from shop_common import serve

    typer.run(serve.main)
