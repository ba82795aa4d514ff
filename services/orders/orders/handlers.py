"""Event handlers of the orders service: what it consumes, declared on its router; each calls its use case."""

from __future__ import annotations

from shop_common.bans import BannedUsers
from shop_events import Event, Router
from shop_events.catalogue import ProductCreated, ProductUpdated, StockRejected, StockReserved, UserBanned
from shop_events.db_types import DbConnection

from . import application

router = Router()


@router.handles(UserBanned)
async def on_user_banned(event: Event[UserBanned], conn: DbConnection, *, bans: BannedUsers) -> None:
    await application.refuse_banned_user(conn, event.data, bans)


@router.handles(ProductCreated, ProductUpdated)
async def on_product_changed(event: Event[ProductCreated | ProductUpdated], conn: DbConnection) -> None:
    await application.keep_catalogue_copy(conn, event)


@router.handles(StockReserved, StockRejected, batch=True)
async def on_stock_events(
    events: list[Event[StockReserved | StockRejected]], conn: DbConnection, *, payment_seconds: float
) -> None:
    """A run of stock events settled together: three statements for the run instead of three an event."""
    await application.settle_reservations(conn, events, payment_seconds)


# The catalogue copy only: orders, payments and the stock settlements of orders are orders' own truth.
router.fills(
    "catalogue", by=(ProductCreated, ProductUpdated),
    covers="the catalogue copy (each product's name, price and stock); not orders, payments or bans",
)
