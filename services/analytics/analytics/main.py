"""The analytics service's composition root: its app, built from its own routes, handlers and migrations."""

from pathlib import Path

from fastapi import FastAPI
from shop_common.app import create_service_app

from . import api, handlers
from .config import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings=settings or Settings(),
        router=api.router,
        handlers=handlers.router,
        migrations=Path(__file__).with_name("migrations"),
        checks_bans=False,
        description="Counts, sales, revenue and ratings, from events.",
    )
