"""Rebuilding notifications from the history stream: its copies of users and orders come back, and not one
mail is sent again, even with the mail log lost with them (a database lost whole)."""

from __future__ import annotations

from decimal import Decimal

from shop_common.testing import eventually, running
from shop_events.catalogue import OrderCreated, OrderItem, StockRejected, UserRegistered
from shop_events.testing import publish_events

from notifications.main import create_app

USERS = 30


def shop_events() -> list[UserRegistered | OrderCreated]:
    users = [UserRegistered(user_id=u, email=f"user{u}@example.com", name=f"User {u}") for u in range(1, USERS + 1)]
    orders = [
        OrderCreated(order_id=o, user_id=o % USERS + 1, email=f"user{o % USERS + 1}@example.com", total=Decimal("5.00"),
                     items=[OrderItem(product_id=1, quantity=1, unit_price=Decimal("5.00"))])
        for o in range(1, 2 * USERS + 1)
    ]
    return [*users, *orders]


async def test_a_rebuild_gives_back_the_copies_and_sends_no_mail_again(notifications_env, smtp, amqp_url):
    app = create_app()
    async with running(app):
        pool = app.state.pool
        sent = await publish_events(amqp_url, *shop_events())
        await eventually(lambda: len(smtp.mails) == len(sent), timeout=60)
        copies = [
            [tuple(r.values()) for r in await pool.fetch("SELECT user_id, email, name FROM users ORDER BY user_id")],
            [tuple(r.values()) for r in await pool.fetch("SELECT order_id, user_id, email FROM orders ORDER BY order_id")],
        ]
        await pool.execute("TRUNCATE users, orders, notifications")  # the database lost, mail log and all

        done = await app.state.history_rebuild()

        assert len(smtp.mails) == len(sent)  # not one more
        assert done.replayed == len(sent)
        assert [
            [tuple(r.values()) for r in await pool.fetch("SELECT user_id, email, name FROM users ORDER BY user_id")],
            [tuple(r.values()) for r in await pool.fetch("SELECT order_id, user_id, email FROM orders ORDER BY order_id")],
        ] == copies
        # A live event after it finds the customer's address in the rebuilt copy, and is the only new mail.
        await publish_events(amqp_url, StockRejected(order_id=7, user_id=8, reason="not enough stock"))
        await eventually(lambda: len(smtp.mails) == len(sent) + 1, timeout=30)
        assert smtp.mails[-1].recipients == ["user8@example.com"]
        assert len(smtp.mails) == len(sent) + 1
