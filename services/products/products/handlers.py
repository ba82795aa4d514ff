"""Event handlers of the products service: one async function per event type it consumes.

Each runs inside the consumer's transaction (its own savepoint), with the inbox row written for it,
so an event redelivered under the same id never gets here twice. UserBanned is taken by the shared
kit (checks_bans=True in main.py).
"""

from __future__ import annotations

import asyncpg
from shop_events import Event, Handler, add_event
from shop_events.catalogue import OrderCancelled, OrderCreated, ReviewModerated, StockRejected, StockReserved

from . import db
from .domain import Refusal, ReviewStatus, decide_reservation, moderate, wanted_quantities


async def reserve_stock(conn: asyncpg.Connection, order: OrderCreated) -> None:
    """Reserve every line of the order or none. The product rows stay locked until the caller commits,
    so orders racing for the last units are decided one after the other on fresh stock."""
    if await db.find_reservation(conn, order.order_id) is not None:
        return  # this order was decided already (the same order sent again under another event id)
    wanted = wanted_quantities((item.product_id, item.quantity) for item in order.items)
    products = await db.lock_products(conn, wanted)
    decision = decide_reservation(wanted, {pid: row["stock"] for pid, row in products.items()})
    if isinstance(decision, Refusal):
        await db.record_rejection(conn, order.order_id, order.user_id, decision.reason)
        await add_event(conn, StockRejected(order_id=order.order_id, user_id=order.user_id, reason=decision.reason))
        return
    for product_id, quantity in decision.lines.items():
        await db.write_stock(conn, products[product_id], products[product_id]["stock"] - quantity)
    await db.record_reservation(conn, order.order_id, order.user_id, decision.lines)
    await add_event(conn, StockReserved(order_id=order.order_id))


async def release_stock(conn: asyncpg.Connection, order_id: int) -> None:
    """Put back exactly what was reserved for the order, once; nothing for an order never reserved."""
    reservation = await db.find_reservation(conn, order_id, lock=True)
    if reservation is None or reservation["status"] != "reserved":
        return
    lines = await db.reserved_lines(conn, order_id)
    products = await db.lock_products(conn, lines)
    for product_id, quantity in lines.items():
        await db.write_stock(conn, products[product_id], products[product_id]["stock"] + quantity)
    await db.mark_released(conn, order_id)


async def on_order_created(event: Event, conn: asyncpg.Connection) -> None:
    await reserve_stock(conn, event.data)


async def on_order_cancelled(event: Event, conn: asyncpg.Connection) -> None:
    order: OrderCancelled = event.data
    await release_stock(conn, order.order_id)


async def on_product_reviewed(event: Event, conn: asyncpg.Connection) -> None:
    """Moderation: publish the review or reject it as spam, count published ratings, tell analytics."""
    review = await db.get_review(conn, event.data.review_id, lock=True)
    if review is None:
        raise LookupError(f"review {event.data.review_id} is not in this database")
    if review["status"] != ReviewStatus.PENDING.value:
        return  # moderated already
    status = moderate(review["comment"])
    await db.set_review_status(conn, review["id"], status)
    if status is ReviewStatus.PUBLISHED:
        await db.count_published_rating(conn, review["product_id"], review["rating"])
    await add_event(
        conn,
        ReviewModerated(
            review_id=review["id"],
            product_id=review["product_id"],
            user_id=review["user_id"],
            rating=review["rating"],
            status=status.value,
        ),
    )


HANDLERS: dict[str, Handler] = {
    "OrderCreated": on_order_created,
    "OrderCancelled": on_order_cancelled,
    "ProductReviewed": on_product_reviewed,
}
