"""Taking payment: the adapter every provider fits, and the built-in test provider of docs/contract.md section 2."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


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


class PaymentProvider(Protocol):
    async def charge(self, order_id: int, amount: Decimal, token: str) -> PaymentResult:
        """Charge `amount` once for `order_id` (a real adapter passes order_id as the provider's
        idempotency key, so a retried call never charges twice). Declines come back as a failed result;
        an unusable token raises UnknownPaymentToken; an unreachable provider raises PaymentUnavailable."""
        ...


class TestPaymentProvider:
    """Decides by token alone, as docs/contract.md section 2 says; never talks to anyone."""

    __test__ = False  # not a pytest test class, despite the name

    OUTCOMES: dict[str, str | None] = {
        "tok_visa": None,
        "tok_insufficient_funds": "insufficient funds",
        "tok_card_declined": "card declined",
    }

    async def charge(self, order_id: int, amount: Decimal, token: str) -> PaymentResult:
        if token not in self.OUTCOMES:
            raise UnknownPaymentToken(f"unknown payment token; the test provider takes {', '.join(self.OUTCOMES)}")
        error = self.OUTCOMES[token]
        if error is not None:
            return PaymentResult.failed(error)
        return PaymentResult.paid(f"pay_{uuid.uuid4().hex}")
