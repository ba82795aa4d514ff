"""A small app served as the services are (shop_common.serve, with the same closing middleware), for
test_graceful_stop.py: what a stop does to connections does not depend on what the app is."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from shop_common.serve import CloseWhenDraining


def create_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(CloseWhenDraining)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/slow")
    async def slow(seconds: float) -> dict[str, float]:
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    return app
