"""A consumer added after the shop has run for a while: with HISTORY_BACKFILL=true its first start replays
the history stream into its ledger before it goes live, so its figures count every order, not only those
placed after it joined. Built like any service (create_service_app); a real one gets its entry in
shop_events/registry.py (broker user, database, deployment), which an example does without."""

from decimal import Decimal
from pathlib import Path
from typing import ClassVar

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field
from shop_common.app import DbPool, create_service_app
from shop_common.auth import Admin
from shop_common.config import ServiceSettings

from . import handlers


class Settings(ServiceSettings):
    service: ClassVar[str] = "ledger"
    database_url: str = Field("postgresql://postgres@127.0.0.1:5432/ledger", validation_alias="LEDGER_DATABASE_URL")


class Totals(BaseModel):
    orders_created: int
    orders_paid: int
    sales_total: Decimal
    revenue: Decimal


api = APIRouter(prefix="/api/ledger", tags=["ledger"])


@api.get("/totals", response_model=Totals)
async def totals(_: Admin, pool: DbPool) -> Totals:
    row = await pool.fetchrow(
        "SELECT count(total) AS orders_created, count(paid_amount) AS orders_paid,"
        " coalesce(sum(total), 0) AS sales_total, coalesce(sum(paid_amount), 0) AS revenue FROM ledger"
    )
    return Totals(**dict(row or {}))


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings=settings or Settings(),
        router=api,
        handlers=handlers.router,
        migrations=Path(__file__).with_name("migrations"),
        checks_bans=False,
        description="An example late joiner: orders and sales, from the whole history.",
    )
