"""The books of one round: what the clients did (the ledger) against what the shop shows, through the API,
the mail the SMTP sink received, the broker's parking queues, and the databases where the API shows nothing
(reservations, outbox). Every difference is named; a shortfall counts as lost, a surplus as applied twice."""

from __future__ import annotations

import email
import email.policy
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from load import Client, Ledger, Placed
from stack import SERVICES, FaultStack

SUMMARY_COUNTS = (
    "users_registered", "orders_created", "orders_confirmed", "orders_rejected", "orders_paid", "orders_cancelled", "reviews",
    "refunds", "orders_shipped", "orders_delivered",
)
CHARGED = ("paid", "shipped", "delivered")  # the states in which the provider holds the order's money
PAYMENT_ERRORS = {"tok_insufficient_funds": "insufficient funds", "tok_card_declined": "card declined"}
BY_CUSTOMER, TIMEOUT = "cancelled by customer", "payment timeout"
MESSAGE_ID = re.compile(r"<([a-z_]+)\.([0-9a-f-]{36})@")
PRODUCT = re.compile(r"\(product #(\d+)\)")  # in the subject of stock_low and supplier_reorder mails


@dataclass
class Snapshot:
    """What the shop showed before the round, so the round's own figures are the differences."""

    summary: dict
    mail_files: set[str]


@dataclass
class Books:
    lost: int = 0
    twice: int = 0
    problems: list[str] = field(default_factory=list)
    parked: dict[str, int] = field(default_factory=dict)

    def count(self, what: str, expected: int, seen: int) -> None:
        if seen < expected:
            self.lost += expected - seen
        elif seen > expected:
            self.twice += seen - expected
        if seen != expected:
            self.problems.append(f"{what}: expected {expected}, seen {seen}")

    def money(self, what: str, expected: Decimal, seen: Decimal) -> None:
        if seen != expected:
            self.lost += seen < expected
            self.twice += seen > expected
            self.problems.append(f"{what}: expected {expected}, seen {seen}")

    def within(self, what: str, low: int, high: int, seen: int) -> None:
        if seen < low:
            self.lost += low - seen
        elif seen > high:
            self.twice += seen - high
        if not low <= seen <= high:
            self.problems.append(f"{what}: expected {low}" + (f" to {high}" if high != low else "") + f", seen {seen}")

    @property
    def exact(self) -> bool:
        return not self.problems


@dataclass
class Mail:
    file: str
    message_id: str
    kind: str | None  # the shop's kind of mail, from the Message-ID
    to: str
    subject: str


async def snapshot(client: Client, stack: FaultStack) -> Snapshot:
    summary = (await client.call("GET", "/api/analytics/summary", headers=client.admin)).json()
    return Snapshot(summary, {p.name for p in _mail_folder(stack).glob("*.eml")})


def _mail_folder(stack: FaultStack) -> Path:
    assert stack.stack is not None
    return stack.stack.mail_dir


def read_mails(stack: FaultStack, skip: set[str] | frozenset[str] = frozenset()) -> list[Mail]:
    """Every mail in the SMTP sink but the files named in `skip`."""
    found = []
    for path in _mail_folder(stack).glob("*.eml"):
        if path.name in skip:
            continue
        mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        message_id = str(mail["Message-ID"]).strip()
        kind = MESSAGE_ID.match(message_id)
        found.append(Mail(path.name, message_id, kind and kind.group(1), str(mail["X-Envelope-To"]), str(mail["Subject"])))
    return found


def mail_ids(stack: FaultStack) -> Counter[str]:
    """How many times the SMTP sink holds each Message-ID."""
    return Counter(mail.message_id for mail in read_mails(stack))


def stock_low_alerts(initial: int, threshold: int, paid: int, cancelled: list[int]) -> tuple[int, int]:
    """How many StockLow a product's round makes, at least and at most, by products' rule (domain.py's
    low_stock_check): an alert each time stock goes from above the threshold to at or below it, none at
    creation. Paid orders take for good; a cancelled one takes, then gives back; a rejected one takes
    nothing. The clients do not see in which order products took and gave back, so: stock ends at
    initial - paid, and is never below that minus every cancelled order's units. It crossed at least
    once if it ends at or below the threshold, never if even its lowest stays above, and crossing again
    needs a give-back to lift it above first, so at most once more per cancelled order."""
    assert initial > threshold, "a product made at or below its threshold would alert on its first order"
    final = initial - paid
    low = 1 if final <= threshold else 0
    high = 0 if final - sum(cancelled) > threshold else 1 + len(cancelled)
    return low, high


async def check(
    client: Client, stack: FaultStack, before: Snapshot, expected_parked: dict[str, int],
    admitted_copies: frozenset[str] | set[str] = frozenset(),
) -> Books:
    books = Books()
    ledger = client.ledger
    await client.refresh_statuses()
    orders = list(ledger.orders.values())

    # Every order reached the end its client's choices and the answers it was given lead to.
    for o in orders:
        for problem in life_problems(o):
            books.lost += 1
            books.problems.append(f"order {o.id} ({o.plan}, {o.payment_token}, answers {o.answers}): {problem}")
    by_status = Counter(o.status for o in orders)
    kept = [o for o in orders if o.status in CHARGED]  # a paid order keeps its reservation and its money
    await check_money(books, stack, orders)
    # No order twice: each customer's own list holds exactly the orders its client placed.
    for customer in ledger.customers:
        mine = await every_page(client, "/api/orders", customer.auth)
        placed = sum(1 for o in orders if o.customer is customer)
        books.count(f"orders of customer {customer.id}", placed, len(mine))

    # Stock: what the clients' confirmed orders took, and stock + reserved units conserved per product.
    reserved = {
        r["product_id"]: r["units"]
        for r in await stack.sql(
            "products",
            "SELECT l.product_id, sum(l.quantity)::int AS units FROM reservation_lines l"
            " JOIN reservations r USING (order_id) WHERE r.status = 'reserved' AND l.product_id = ANY($1::bigint[])"
            " GROUP BY l.product_id",
            list(ledger.products),
        )
    }
    for product, initial in ledger.products.items():
        taken = sum(q for o in kept for p, q in o.lines if p == product)
        stock = (await client.call("GET", f"/api/products/{product}")).json()["stock"]
        books.count(f"stock of product {product} (taken units)", taken, initial - stock)
        books.count(f"stock + reserved units of product {product}", initial, stock + reserved.get(product, 0))

    # Analytics counts what the clients did.
    summary = (await client.call("GET", "/api/analytics/summary", headers=client.admin)).json()
    delta = {k: summary[k] - before.summary[k] for k in SUMMARY_COUNTS}
    # StockReserved went out for every order products reserved, also one cancelled or refunded later, and
    # StockRejected for every one it refused, also one its customer cancelled before orders heard of the refusal
    # (the customer is told both); a cancel that overtook its order's reservation leaves a 'cancelled' row and
    # neither. Products' own rows say which.
    decided = {
        r["status"]: r["n"] for r in await stack.sql(
            "products", "SELECT status, count(*)::int AS n FROM reservations WHERE order_id = ANY($1::bigint[])"
            " GROUP BY status", [o.id for o in orders],
        )
    }
    reserved_orders = decided.get("reserved", 0) + decided.get("released", 0)
    rejected_orders = decided.get("rejected", 0)
    ever_paid = [o for o in orders if o.status in (*CHARGED, "refunded")]
    told_cancelled = [o for o in orders if o.status == "cancelled" and o.reason in (BY_CUSTOMER, TIMEOUT)]
    expected = {
        "users_registered": len(ledger.customers),
        "orders_created": len(orders),
        "orders_confirmed": reserved_orders,
        "orders_rejected": rejected_orders,
        "orders_paid": len(ever_paid),
        "orders_cancelled": by_status["cancelled"],
        "reviews": len(ledger.reviews),
        "refunds": by_status["refunded"],
        "orders_shipped": by_status["shipped"] + by_status["delivered"],
        "orders_delivered": by_status["delivered"],
    }
    for name in SUMMARY_COUNTS:
        books.count(f"analytics {name}", expected[name], delta[name])
    books.money(
        "analytics sales_total", sum((o.total for o in orders), Decimal(0)),
        Decimal(summary["sales_total"]) - Decimal(before.summary["sales_total"]),
    )
    books.money(
        "analytics revenue (net of refunds)", sum((o.total for o in kept), Decimal(0)),
        Decimal(summary["revenue"]) - Decimal(before.summary["revenue"]),
    )
    books.money(
        "analytics refunded", sum((o.total for o in orders if o.status == "refunded"), Decimal(0)),
        Decimal(summary["refunded"]) - Decimal(before.summary["refunded"]),
    )
    for product in ledger.products:
        figures = (await client.call("GET", f"/api/analytics/products/{product}", headers=client.admin)).json()
        units = sum(q for o in kept for p, q in o.lines if p == product)
        books.count(f"analytics units_sold of product {product}", units, figures["units_sold"])

    # Registrations: every account a client made is in auth once, and no other of this round.
    users = await every_page(client, "/api/auth/users", client.admin)
    registered = Counter(u["email"] for u in users if u["email"].startswith(f"faults-{ledger.round}-"))
    books.count("accounts in auth", len(ledger.customers), sum(registered.values()))
    for address, n in registered.items():
        if n > 1:
            books.problems.append(f"account {address} registered {n} times")
    if set(registered) != {c.email for c in ledger.customers}:
        books.problems.append("auth's accounts of this round are not the ones its clients registered")

    # One mail per mail-worthy event: by the sink's files (a resent copy has the same Message-ID) ...
    wanted = {
        "welcome": len(ledger.customers),
        "order_confirmation": len(orders),
        "order_rejected": rejected_orders,
        "payment_received": len(ever_paid),
        "payment_failed": by_status["cancelled"] - len(told_cancelled),
        "shipping_request": len(ever_paid),
        "order_cancelled": len(told_cancelled),
        "payment_refunded": by_status["refunded"],
        "order_shipped": by_status["shipped"] + by_status["delivered"],
    }
    addresses = {c.email for c in ledger.customers} | set(ledger.suppliers.values())
    kinds: dict[str, str] = {}  # Message-ID -> kind, each Message-ID once
    low_mails: dict[str, Counter[int]] = {"stock_low": Counter(), "supplier_reorder": Counter()}
    copies: Counter[str] = Counter()
    for mail in read_mails(stack, before.mail_files):
        if mail.kind is None:
            books.problems.append(f"mail {mail.file} has no shop Message-ID")
            continue
        if mail.to not in addresses and mail.kind not in ("shipping_request", "stock_low"):
            continue  # another round's
        if mail.kind in low_mails:
            product = PRODUCT.search(mail.subject)
            if product is None or int(product.group(1)) not in ledger.products:
                continue
            if mail.message_id not in kinds:
                low_mails[mail.kind][int(product.group(1))] += 1
        kinds[mail.message_id] = mail.kind
        copies[mail.message_id] += 1
    mails = Counter(kinds.values())
    for kind, count in wanted.items():
        books.count(f"{kind} mails", count, mails[kind])
    for message_id, count in copies.items():
        if count > 1 and message_id not in admitted_copies:
            books.twice += count - 1
            books.problems.append(f"mail {message_id} was sent {count} times")

    # StockLow: one alert each time a product's stock went from above its threshold to at or below it,
    # derived from what the clients' orders took and gave back (see stock_low_alerts).
    for product, initial in ledger.products.items():
        paid = sum(q for o in kept for p, q in o.lines if p == product)
        cancelled = [q for o in orders if o.status in ("cancelled", "refunded") for p, q in o.lines if p == product]
        low, high = stock_low_alerts(initial, ledger.thresholds[product], paid, cancelled)
        books.within(f"stock_low mails of product {product}", low, high, low_mails["stock_low"][product])
        books.count(
            f"supplier_reorder mails of product {product} (one per stock_low)",
            low_mails["stock_low"][product], low_mails["supplier_reorder"][product],
        )

    # ... and by what notifications shows each customer.
    shown: Counter[str] = Counter()
    for customer in ledger.customers:
        notices = await every_page(client, "/api/notifications", customer.auth)
        shown.update(n["type"] for n in notices if n["status"] == "sent")
    for kind in ("welcome", "order_confirmation", "order_rejected", "payment_received", "payment_failed",
                 "order_cancelled", "payment_refunded", "order_shipped"):
        books.count(f"{kind} notifications shown to customers", wanted[kind], shown[kind])

    # Nothing parked but what the test made poison on purpose; no event left in an outbox.
    books.parked = stack.parked()
    for queue in sorted(set(books.parked) | set(expected_parked)):
        books.count(f"parked in {queue}", expected_parked.get(queue, 0), books.parked.get(queue, 0))
    if books.parked != expected_parked:  # why, before the round's end purges them
        listed = stack.shop_events("parked", "list").splitlines()
        books.problems += [f"parked: {line}" for line in listed[:5]]
    for service in SERVICES:
        unsent = (await stack.sql(service, "SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL"))[0]["n"]
        books.count(f"unsent outbox rows of {service}", 0, unsent)
    return books


async def every_page(client: Client, path: str, headers: dict[str, str]) -> list[dict]:
    found: list[dict] = []
    while True:
        response = await client.call("GET", path, params={"limit": 200, "offset": len(found)}, headers=headers)
        assert response.status_code == 200, response.text
        found += response.json()
        if len(response.json()) < 200:
            return found


def describe(ledger: Ledger) -> str:
    statuses = Counter(o.status for o in ledger.orders.values())
    return ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))


def life_problems(o: Placed) -> list[str]:
    """What is wrong with how this order ended, given its client's plan and the answers it got (empty: right).
    A lost race is no problem when the answers show it: a pay answered 409 may have lost to the deadline."""
    if o.status == "rejected":  # not enough stock: any plan may end so, unless a call of it went through first
        went_through = [step for step, answer in o.answers.items() if answer == 200]
        return [f"rejected after {', '.join(went_through)} answered 200"] if went_through else []
    if o.answers.get("pay") == 200 and o.status not in (*CHARGED, "refunded"):
        return [f"its pay answered 200, it is {o.status}"]
    if o.answers.get("cancel") == 200 and (o.status, o.reason) != ("cancelled", BY_CUSTOMER):
        return [f"its cancel answered 200, it is {o.status} ({o.reason})"]
    wanted = {
        "pay": o.expected_if_confirmed, "pay_late": "paid", "refund": "refunded", "refund_later": "paid",
        "ship": "delivered",
        "cancel_pending": "cancelled", "cancel_confirmed": "cancelled", "unpaid": "cancelled",
    }[o.plan]
    reasons = {
        "pay": PAYMENT_ERRORS.get(o.payment_token), "cancel_pending": BY_CUSTOMER, "cancel_confirmed": BY_CUSTOMER,
        "unpaid": TIMEOUT,
    }
    if (o.status, o.reason) == ("cancelled", TIMEOUT) and o.answers.get("pay") in (None, 409):
        return []  # the deadline came before its client's pay or cancel: nothing charged (check_money says)
    if o.status != wanted:
        return [f"it is {o.status} ({o.reason}), its client's plan leads to {wanted}"]
    if o.status == "cancelled" and o.reason != reasons.get(o.plan):
        return [f"cancelled for {o.reason!r}, its client's plan says {reasons.get(o.plan)!r}"]
    return []


async def check_money(books: Books, stack: FaultStack, orders: list[Placed]) -> None:
    """The provider's own books (the test provider's ledger in orders' database): money is taken once for every
    order that is paid, shipped or delivered, taken and given back for a refunded one, and never taken for one
    cancelled or rejected. Taken = paid - refunded, in total as well as per order."""
    rows = await stack.sql(
        "orders", "SELECT order_id, outcome, amount, refunded FROM test_provider_ledger WHERE order_id = ANY($1::bigint[])",
        [o.id for o in orders],
    )
    ledger = {r["order_id"]: r for r in rows}
    taken = Decimal(0)
    for o in orders:
        row = ledger.get(o.id)
        charged = row["amount"] if row is not None and row["outcome"] == "charged" else Decimal(0)
        refunded = (row["refunded"] if row is not None else None) or Decimal(0)
        expected = (o.total, Decimal(0)) if o.status in CHARGED else (o.total, o.total) if o.status == "refunded" else (0, 0)
        if (charged, refunded) != expected:
            books.problems.append(f"order {o.id} is {o.status}: the provider charged {charged}, refunded {refunded}")
            books.lost += 1
        taken += charged - refunded
    books.money("money taken (charged - refunded)", sum((o.total for o in orders if o.status in CHARGED), Decimal(0)), taken)
