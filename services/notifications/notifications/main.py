"""The notifications service's composition root: its app, built from its own routes, handlers and
migrations, and what they depend on (the post room that sends mail)."""

from pathlib import Path

import asyncpg
from fastapi import FastAPI
from shop_common.app import create_service_app

from . import api, handlers
from .config import Settings
from .mail import PostRoom, SmtpRelay


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    async def wiring(pool: asyncpg.Pool) -> dict[str, object]:
        # The post room records each mail on a pool connection of its own, outside the consumer's transaction.
        return {"post": PostRoom(SmtpRelay.from_settings(settings), settings.staff_email, pool)}

    return create_service_app(
        settings=settings,
        router=api.router,
        handlers=handlers.router,
        migrations=Path(__file__).with_name("migrations"),
        checks_bans=False,
        wiring=wiring,
        description="Mail to customers and alerts to staff.",
    )
