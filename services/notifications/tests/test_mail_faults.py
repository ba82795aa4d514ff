"""Faults on the way out: a relay that is down or refuses, and a consumer that dies after the relay took a mail.

The promise under test: every mail is sent (retried through the bus's wait queues, parked with the reason
at worst, never dropped) and sent at most once per event once its send is recorded (mail.py).
"""

import asyncio
from decimal import Decimal

import aio_pika
import asyncpg
import pytest
from shop_common.testing import bearer, eventually, running
from shop_events import parking
from shop_events.catalogue import OrderCreated, OrderItem, OrderPaid, UserRegistered
from shop_events.testing import pass_marker, publish_events

from notifications import db
from notifications.main import create_app

ANN = "ann@example.com"
STAFF = "staff@example.com"
MARKER = "marker@example.com"


async def rows(app, event_id):
    return await app.state.pool.fetch(
        "SELECT type, recipient, status, attempts, last_error FROM notifications WHERE event_id = $1 ORDER BY id",
        event_id,
    )


async def failed_rows(app, event_id):
    return [r for r in await rows(app, event_id) if r["last_error"] is not None]


async def handled(app, event_id) -> bool:
    return bool(await app.state.pool.fetchval("SELECT count(*) FROM processed_events WHERE event_id = $1", event_id))


async def test_mail_waits_for_a_relay_that_is_down_and_is_sent_once_it_is_back(
    notifications_env, smtp_down, amqp_url, make_token
):
    app = create_app()
    async with running(app) as client:
        [registered] = await publish_events(amqp_url, UserRegistered(user_id=7, email=ANN, name="Ann"))
        # Nothing listens on the SMTP port: the attempt fails, the customer sees the mail as pending.
        [pending] = await eventually(lambda: failed_rows(app, registered.event_id))
        assert pending["status"] == "pending" and "SMTPConnectError" in pending["last_error"]
        listed = (await client.get("/api/notifications", headers=bearer(make_token(7)))).json()
        assert [(n["type"], n["status"]) for n in listed] == [("welcome", "pending")]

        smtp_down.start()
        await eventually(lambda: handled(app, registered.event_id), timeout=15)
        [sent] = await rows(app, registered.event_id)
        listed = (await client.get("/api/notifications", headers=bearer(make_token(7)))).json()

    [mail] = smtp_down.mails
    assert mail.recipients == [ANN] and mail.subject == "Welcome to the shop"
    assert sent["status"] == "sent" and sent["attempts"] >= 2 and sent["last_error"] is None
    assert [(n["type"], n["status"]) for n in listed] == [("welcome", "sent")]


async def test_a_refused_staff_mail_is_retried_alone_and_the_customer_s_receipt_is_not_sent_again(
    notifications_env, smtp, amqp_url
):
    """OrderPaid sends two mails. The relay takes the receipt and answers 450 to the staff address twice:
    the retries send only the shipping request; the savepoint rollback does not make the receipt go twice."""
    items = [OrderItem(product_id=1, quantity=1, unit_price=Decimal("5.00"))]
    app = create_app()
    async with running(app):
        await publish_events(
            amqp_url,
            UserRegistered(user_id=7, email=ANN, name="Ann"),
            OrderCreated(order_id=3, user_id=7, email=ANN, total=Decimal("5.00"), items=items),
        )
        await eventually(lambda: len(smtp.mails) == 2)
        smtp.refuse(STAFF, times=2)
        [paid] = await publish_events(amqp_url, OrderPaid(order_id=3, user_id=7, payment_id="pay_3", amount=Decimal("5.00")))
        await eventually(lambda: handled(app, paid.event_id), timeout=15)
        records = await rows(app, paid.event_id)

    assert [m.subject for m in smtp.to(ANN)].count("Payment received for order #3") == 1
    assert [m.subject for m in smtp.to(STAFF)] == ["Ship order #3"]
    assert [(r["type"], r["status"], r["attempts"]) for r in records] == [
        ("payment_received", "sent", 1), ("shipping_request", "sent", 3),
    ]


async def test_a_run_of_orders_is_mailed_side_by_side_and_a_refused_one_is_retried_alone(notifications_env, smtp, amqp_url):
    """OrderCreated published together reach the handler as runs: their mails go over several SMTP connections
    at the same time (one after another would reuse one). Then the relay answers 450 to one customer of the
    next dozen twice: that run fails, is redone event by event, and the refused mail is retried alone; every
    customer gets one confirmation."""
    items = [OrderItem(product_id=1, quantity=1, unit_price=Decimal("5.00"))]
    customers = [f"customer{i}@example.com" for i in range(24)]

    async def place(app, emails):
        created = await publish_events(amqp_url, *(
            OrderCreated(order_id=customers.index(email), user_id=100 + customers.index(email), email=email,
                         total=Decimal("5.00"), items=items)
            for email in emails
        ))
        for event in created:
            await eventually(lambda event=event: handled(app, event.event_id), timeout=20)
        return {r["recipient"]: r["attempts"] for e in created for r in await rows(app, e.event_id)}

    app = create_app()
    async with running(app):
        await place(app, customers[:12])
        assert len({m.peer for m in smtp.mails}) > 1
        smtp.refuse(customers[18], times=2)
        attempts = await place(app, customers[12:])

    assert sorted(r for m in smtp.mails for r in m.recipients) == sorted(customers)
    assert attempts == {email: 3 if email == customers[18] else 1 for email in customers[12:]}


async def test_a_mail_the_relay_keeps_refusing_is_parked_with_the_reason_and_sent_once_replayed(
    notifications_env, smtp, amqp_url
):
    app = create_app()
    async with running(app):
        smtp.refuse(ANN, times=1000, reply="550 5.1.1 Mailbox unavailable")
        [registered] = await publish_events(amqp_url, UserRegistered(user_id=7, email=ANN, name="Ann"))
        connection = await aio_pika.connect(amqp_url)
        try:
            [parked] = await eventually(lambda: parking.list_parked(connection, "notifications.background.dlq"), timeout=15)
            assert parked.message_id == registered.event_id and parked.attempts == 5
            assert "550" in parked.reason and "Mailbox unavailable" in parked.reason
            [record] = await rows(app, registered.event_id)
            assert record["status"] == "pending" and record["attempts"] == 5

            smtp.refuse(ANN, times=0)
            assert await parking.replay(connection, "notifications.background.dlq") == 1
        finally:
            await connection.close()
        await eventually(lambda: handled(app, registered.event_id))
        [record] = await rows(app, registered.event_id)

    assert [m.recipients for m in smtp.mails] == [[ANN]] and record["status"] == "sent"


async def test_relay_accepted_then_the_consumer_died_before_its_ack_and_the_mail_is_not_sent_again(
    notifications_env, smtp, amqp_url, monkeypatch
):
    """The relay accepts the welcome mail, the service records the send, and then the consumer dies: it
    hangs right after the `sent` record is committed, before the batch's transaction commits and before the
    ack, and the app is stopped in that state. Stopping cancels the stuck handler (its transaction, with the
    inbox row, rolls back) and closes the broker connection with the delivery unacked, which is what the
    broker and PostgreSQL see when the process is killed. A new app on the same database and vhost then gets
    the redelivered event, handles it (inbox row committed), and sends nothing more: one mail in all."""
    app = create_app()
    recorded = asyncio.Event()

    async def record_then_die(pool, notice_id):
        await real_mark_sent(pool, notice_id)
        recorded.set()
        await asyncio.Event().wait()  # never returns: no commit, no ack

    real_mark_sent = db.mark_sent
    with monkeypatch.context() as patch:
        patch.setattr(db, "mark_sent", record_then_die)
        async with running(app):
            [registered] = await publish_events(amqp_url, UserRegistered(user_id=7, email=ANN, name="Ann"))
            await asyncio.wait_for(recorded.wait(), 10)
            assert len(smtp.mails) == 1
            assert not await handled(app, registered.event_id)  # the consumer never committed

    restarted = create_app()
    async with running(restarted):
        await eventually(lambda: handled(restarted, registered.event_id), timeout=15)
        [record] = await rows(restarted, registered.event_id)

    assert [m.recipients for m in smtp.mails] == [[ANN]]
    assert record["status"] == "sent"


async def test_the_one_window_left_a_death_between_accept_and_record_resends_with_the_same_message_id(
    notifications_env, smtp, amqp_url, monkeypatch
):
    """The limit of the guarantee, pinned down: if the consumer dies after the relay said 250 but before the
    `sent` record commits (one PostgreSQL round trip), the redelivered event sends the mail once more.
    Both copies carry the same Message-ID, derived from the event id and type, so they can be told apart."""
    app = create_app()
    accepted = asyncio.Event()

    async def die_before_recording(pool, notice_id):
        accepted.set()
        await asyncio.Event().wait()

    with monkeypatch.context() as patch:
        patch.setattr(db, "mark_sent", die_before_recording)
        async with running(app):
            [registered] = await publish_events(amqp_url, UserRegistered(user_id=7, email=ANN, name="Ann"))
            await asyncio.wait_for(accepted.wait(), 10)

    restarted = create_app()
    async with running(restarted):
        await eventually(lambda: handled(restarted, registered.event_id), timeout=15)
        [record] = await rows(restarted, registered.event_id)

    assert len(smtp.mails) == 2 and record["status"] == "sent"
    assert {m.message_id for m in smtp.mails} == {f"<welcome.{registered.event_id}@example.com>"}


@pytest.mark.parametrize("batch_size", ["1", "50"])
async def test_a_burst_of_redelivered_events_mails_each_customer_once(
    notifications_env, smtp, amqp_url, batch_size
):
    """Whatever the batch size, every event mails once even when the whole burst is delivered twice."""
    notifications_env.setenv("EVENT_BATCH_SIZE", batch_size)
    users = [UserRegistered(user_id=i, email=f"user{i}@example.com", name=None) for i in range(1, 41)]
    app = create_app()
    async with running(app):
        sent = await publish_events(amqp_url, *users)
        await publish_events(amqp_url, *sent)
        # queued behind the 40 copies on the same lane: once it is handled, so are they
        await pass_marker(amqp_url, app.state.pool, UserRegistered(user_id=41, email=MARKER, name=None), timeout=30)

    assert sorted(r for m in smtp.mails for r in m.recipients) == sorted([MARKER] + [u.email for u in users])


async def test_a_database_hiccup_while_recording_the_send_does_not_send_the_mail_again(
    notifications_env, smtp, amqp_url, monkeypatch
):
    """The relay took the mail and the first `sent` write hits a dropped database connection: the post room
    writes it again instead of failing the event (which would send the mail a second time)."""
    real_mark_sent = db.mark_sent
    calls = 0

    async def drops_once(pool, notice_id):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
        await real_mark_sent(pool, notice_id)

    monkeypatch.setattr(db, "mark_sent", drops_once)
    app = create_app()
    async with running(app):
        [registered] = await publish_events(amqp_url, UserRegistered(user_id=7, email=ANN, name="Ann"))
        await eventually(lambda: handled(app, registered.event_id))
        [record] = await rows(app, registered.event_id)

    assert calls == 2 and [m.recipients for m in smtp.mails] == [[ANN]] and record["status"] == "sent"


async def test_a_database_restart_while_recording_the_send_does_not_send_the_mail_again(
    notifications_env, smtp, amqp_url, monkeypatch
):
    """A PostgreSQL restart cuts pooled connections (asyncpg's InternalClientError) and refuses new ones for
    seconds (OSError, then "starting up"): the post room keeps writing `sent` through it instead of failing
    the event, whose retry would mail the customer twice (found by the fault suite restarting PostgreSQL)."""
    real_mark_sent = db.mark_sent
    refusals = [asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
                ConnectionRefusedError(111, "Connect call failed"), OSError(111, "Connect call failed"),
                asyncpg.CannotConnectNowError("the database system is starting up"),
                ConnectionRefusedError(111, "Connect call failed")]
    calls = 0

    async def restarting(pool, notice_id):
        nonlocal calls
        calls += 1
        if refusals:
            raise refusals.pop(0)
        await real_mark_sent(pool, notice_id)

    monkeypatch.setattr(db, "mark_sent", restarting)
    app = create_app()
    async with running(app):
        [registered] = await publish_events(amqp_url, UserRegistered(user_id=8, email=ANN, name="Ann"))
        await eventually(lambda: handled(app, registered.event_id), timeout=20)
        [record] = await rows(app, registered.event_id)

    assert calls == 6 and [m.recipients for m in smtp.mails] == [[ANN]] and record["status"] == "sent"
