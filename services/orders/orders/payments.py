"""Taking payment: the adapter every provider fits, and the built-in test provider of docs/contract.md section 2."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import asyncpg


@dataclass(frozen=True)
class PaymentResult:
    ok: bool
    payment_id: str | None = None
    error: str | None = None

    @classmethod
    def paid(cls, payment_id: str) -> PaymentResult:
        return cls(ok=True, payment_id=payment_id)

    @classmethod
    def failed(cls, error: str) -> PaymentResult:
        return cls(ok=False, error=error)


class UnknownPaymentToken(Exception):
    """The provider doesn't know the token: nothing was charged or declined, so the order stays as it was."""


class PaymentUnavailable(Exception):
    """The provider could not be reached or answered nothing usable: nothing is known to be charged."""


class RefundRefused(Exception):
    """The provider holds no charge under this order's key to give back."""


class PaymentProvider(Protocol):
    """Every call is keyed by the order id, the provider's idempotency key: asked again, the provider answers as
    it did the first time and moves no money twice."""

    async def charge(self, order_id: int, amount: Decimal, token: str) -> PaymentResult:
        """Charge `amount` once for `order_id`. Declines come back as a failed result (also after void);
        an unusable token raises UnknownPaymentToken; an unreachable provider raises PaymentUnavailable."""
        ...

    async def refund(self, order_id: int, amount: Decimal) -> str:
        """Give back the order's charge once; the refund id. RefundRefused: nothing was charged."""
        ...

    async def void(self, order_id: int) -> str | None:
        """Close the order's key, so that no charge under it succeeds from now on. The payment id if a charge
        succeeded before (the payment won the race), else None."""
        ...


class TestPaymentProvider:
    """Decides a charge by token alone, as docs/contract.md section 2 says, and keeps its books as a provider
    would, one row per key in `test_provider_ledger`, so that a repeated call answers the first one's outcome."""

    __test__ = False  # not a pytest test class, despite the name

    OUTCOMES: dict[str, str | None] = {
        "tok_visa": None,
        "tok_insufficient_funds": "insufficient funds",
        "tok_card_declined": "card declined",
    }
    VOIDED = "the payment window of this order is closed"

    def __init__(self, books: asyncpg.Pool) -> None:
        self.books = books

    async def charge(self, order_id: int, amount: Decimal, token: str) -> PaymentResult:
        if token not in self.OUTCOMES:
            raise UnknownPaymentToken(f"unknown payment token; the test provider takes {', '.join(self.OUTCOMES)}")
        error = self.OUTCOMES[token]
        row = await self._first_call(
            order_id, "declined" if error else "charged", None if error else f"pay_{uuid.uuid4().hex}",
            None if error else amount, error,
        )
        if row["outcome"] == "charged":
            return PaymentResult.paid(row["payment_id"])
        return PaymentResult.failed(row["error"] or self.VOIDED)

    async def refund(self, order_id: int, amount: Decimal) -> str:
        refund_id: str | None = await self.books.fetchval(
            "UPDATE test_provider_ledger SET refund_id = coalesce(refund_id, $2), refunded = coalesce(refunded, $3)"
            " WHERE order_id = $1 AND outcome = 'charged' RETURNING refund_id",
            order_id, f"re_{uuid.uuid4().hex}", amount,
        )
        if refund_id is None:
            raise RefundRefused(f"no charge of order {order_id} to refund")
        return refund_id

    async def void(self, order_id: int) -> str | None:
        row = await self._first_call(order_id, "voided", None, None, None)
        return row["payment_id"] if row["outcome"] == "charged" else None

    async def _first_call(
        self, order_id: int, outcome: str, payment_id: str | None, amount: Decimal | None, error: str | None
    ) -> asyncpg.Record:
        """The key's row: this call's, or the one the first call under the key wrote."""
        await self.books.execute(
            "INSERT INTO test_provider_ledger (order_id, outcome, payment_id, amount, error)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id) DO NOTHING",
            order_id, outcome, payment_id, amount, error,
        )
        row = await self.books.fetchrow(
            "SELECT outcome, payment_id, error FROM test_provider_ledger WHERE order_id = $1", order_id
        )
        assert row is not None  # written by this call or the first; the ledger is never emptied
        return row
