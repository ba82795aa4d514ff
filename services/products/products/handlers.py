"""Event handlers of the products service: what it consumes, declared on its router.

Each runs inside the consumer's transaction, with the inbox row written for it,
so an event redelivered under the same id never gets here twice.
"""

from __future__ import annotations

from shop_common.auth import record_ban
from shop_events import Event, EventData, Router, add_event, add_events
from shop_events.catalogue import (
    OrderCancelled,
    OrderCreated,
    ProductReviewed,
    ReviewModerated,
    StockRejected,
    StockReserved,
    UserBanned,
)
from shop_events.db_types import DbConnection

from . import db
from .domain import Refusal, Reservation, ReviewStatus, Shelf, decide_in_turn, moderate, wanted_quantities

router = Router()


async def reserve_stock(conn: DbConnection, order: OrderCreated) -> None:
    """Reserve every line of one order or none (correlated with the request or event being handled)."""
    await reserve_stock_in_turn(conn, [(order, None)])


async def reserve_stock_in_turn(conn: DbConnection, orders: list[tuple[OrderCreated, str | None]]) -> None:
    """Reserve every line of each order or none, deciding the orders one after the other as they came.

    Every product of the run is locked once, in id order, before anything is read: the rows stay locked
    until the caller commits, so orders racing for the last units (in this run or in another replica)
    are decided one after the other on fresh stock. Each order's events carry the correlation id paired
    with it (None: the one being handled now)."""
    products = await db.lock_products(conn, {item.product_id for order, _ in orders for item in order.items})
    decided = await db.decided_orders(conn, [order.order_id for order, _ in orders])
    fresh = []
    for order, correlation in orders:
        if order.order_id not in decided:  # else the same order came again under another event id
            decided.add(order.order_id)
            fresh.append((order, correlation))
    shelves = {
        pid: Shelf(row["stock"], row["low_stock_threshold"], row["low_stock_alerted"]) for pid, row in products.items()
    }
    outcomes = decide_in_turn(
        [(order.order_id, wanted_quantities((i.product_id, i.quantity) for i in order.items)) for order, _ in fresh],
        shelves,
    )

    events: list[tuple[EventData, str | None]] = []
    for (order, correlation), decision in zip(fresh, outcomes, strict=True):
        events += [(db.stock_low(products[pid], left), correlation) for pid, left in decision.low_stock]
        if isinstance(decision.outcome, Refusal):
            reason = decision.outcome.reason
            rejected = StockRejected(order_id=order.order_id, user_id=order.user_id, reason=reason, email=order.email)
            events.append((rejected, correlation))
        else:
            events.append((StockReserved(order_id=order.order_id), correlation))
    taken = sorted({pid for d in outcomes if isinstance(d.outcome, Reservation) for pid in d.outcome.lines})
    await db.write_stocks(conn, [(pid, shelves[pid].stock, shelves[pid].alerted) for pid in taken])
    await db.record_decisions(conn, [(order.user_id, decision) for (order, _), decision in zip(fresh, outcomes, strict=True)])
    if events:
        await add_events(conn, events)


async def release_stock(conn: DbConnection, order_id: int) -> None:
    """Put back exactly what was reserved for the order, once; nothing for an order never reserved."""
    reservation = await db.find_reservation(conn, order_id, lock=True)
    if reservation is None or reservation["status"] != "reserved":
        return
    lines = await db.reserved_lines(conn, order_id)
    products = await db.lock_products(conn, lines)
    for product_id, quantity in lines.items():
        await db.write_stock(conn, products[product_id], products[product_id]["stock"] + quantity)
    await db.mark_released(conn, order_id)


@router.handles(OrderCreated, batch=True)
async def on_orders_created(events: list[Event[OrderCreated]], conn: DbConnection) -> None:
    """A run of OrderCreated decided together: a few statements for the run instead of several per order."""
    await reserve_stock_in_turn(conn, [(event.data, event.correlation_id) for event in events])


@router.handles(OrderCancelled)
async def on_order_cancelled(event: Event[OrderCancelled], conn: DbConnection) -> None:
    await release_stock(conn, event.data.order_id)


@router.handles(ProductReviewed)
async def on_product_reviewed(event: Event[ProductReviewed], conn: DbConnection) -> None:
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



@router.handles(UserBanned)
async def on_user_banned(event: Event[UserBanned], conn: DbConnection) -> None:
    """The banned user's unexpired tokens are refused from now on."""
    await record_ban(conn, event.data)
