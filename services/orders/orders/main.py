"""The orders service's composition root: its app, built from its own routes, handlers and migrations, and
what they depend on (the payment provider)."""

from pathlib import Path

import asyncpg
from fastapi import FastAPI
from shop_common.app import create_service_app

from . import api, handlers
from .config import Settings
from .lifecycle import keep_payment_deadlines
from .payments import PaymentProvider, TestPaymentProvider


def create_app(settings: Settings | None = None, payment_provider: PaymentProvider | None = None) -> FastAPI:
    settings = settings or Settings()

    async def wiring(pool: asyncpg.Pool) -> dict[str, object]:
        # The one place a real provider's adapter would be chosen; the built-in test provider by default.
        return {
            "payment_provider": payment_provider or TestPaymentProvider(pool),
            "payment_seconds": settings.payment_timeout_seconds,
        }

    return create_service_app(
        settings=settings,
        router=api.router,
        handlers=handlers.router,
        migrations=Path(__file__).with_name("migrations"),
        checks_bans=True,
        wiring=wiring,
        timer=keep_payment_deadlines,
        description="Placing, confirming, paying, cancelling, refunding and shipping orders.",
    )
