"""Event handlers of the products service: what it consumes, declared on its router; each calls its use case.

Each runs inside the consumer's transaction, with the inbox row written for it,
so an event redelivered under the same id never gets here twice.
"""

from __future__ import annotations

from shop_common.bans import BannedUsers
from shop_events import Event, Router
from shop_events.catalogue import OrderCancelled, OrderCreated, OrderRefunded, ProductReviewed, UserBanned
from shop_events.db_types import DbConnection

from . import application

router = Router()


@router.handles(OrderCreated, batch=True)
async def on_orders_created(events: list[Event[OrderCreated]], conn: DbConnection) -> None:
    """A run of OrderCreated decided together: a few statements for the run instead of several per order."""
    await application.reserve_stock(conn, [(event.data, event.correlation_id) for event in events])


@router.handles(OrderCancelled, OrderRefunded)
async def on_order_ended_unsold(event: Event[OrderCancelled | OrderRefunded], conn: DbConnection) -> None:
    reason = event.data.reason if isinstance(event.data, OrderCancelled) else "refunded"
    await application.release_stock(conn, event.data.order_id, event.data.user_id, reason)


@router.handles(ProductReviewed)
async def on_product_reviewed(event: Event[ProductReviewed], conn: DbConnection) -> None:
    await application.moderate_review(conn, event.data.review_id)


@router.handles(UserBanned)
async def on_user_banned(event: Event[UserBanned], conn: DbConnection, *, bans: BannedUsers) -> None:
    await application.refuse_banned_user(conn, event.data, bans)
