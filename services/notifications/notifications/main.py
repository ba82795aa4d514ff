"""The notifications service: its app, built from its own routes, handlers and migrations. Nothing else."""

from pathlib import Path

from fastapi import FastAPI
from shop_common.app import create_service_app

from . import api, handlers
from .config import Settings
from .mail import PostRoom, SmtpRelay


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # The post room records each mail on a pool connection of its own; the lifespan creates that pool
    # (app.state.pool) before it starts any consumer, so the handlers always find it.
    post = PostRoom(SmtpRelay.from_settings(settings), settings.staff_email, pool=lambda: app.state.pool)
    app = create_service_app(
        settings=settings,
        router=api.router,
        handlers=handlers.bound_to(post),
        migrations=Path(__file__).with_name("migrations"),
        checks_bans=False,
        description="Mail to customers and alerts to staff.",
    )
    return app
