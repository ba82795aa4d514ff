"""The orders service: its app, built from its own routes, handlers and migrations. Nothing else."""

from pathlib import Path

from fastapi import FastAPI
from shop_common.app import create_service_app

from . import api, handlers
from .config import Settings
from .payments import PaymentProvider, TestPaymentProvider


def create_app(settings: Settings | None = None, payment_provider: PaymentProvider | None = None) -> FastAPI:
    async def wire_payments(app: FastAPI) -> None:
        # The one place a real provider's adapter would be chosen; the built-in test provider by default.
        app.state.payment_provider = payment_provider or TestPaymentProvider()

    return create_service_app(
        settings=settings or Settings(),
        router=api.router,
        handlers=handlers.HANDLERS,
        migrations=Path(__file__).with_name("migrations"),
        checks_bans=True,
        on_start=wire_payments,
        description="Placing, confirming and paying orders.",
    )
