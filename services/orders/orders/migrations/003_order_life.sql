-- The order's whole life (issue 20): cancel, the payment deadline, refund, shipping.
-- contract: the status and payment checks are widened, never narrowed: the code before writes none of the new
-- states, and an order reaches them only through the routes of the code after (docs/design.md, rollouts).
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('pending', 'confirmed', 'rejected', 'paid', 'cancelled', 'refunded', 'shipped', 'delivered'));
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_check;
-- The provider holds money exactly for these states, and the payment id says which charge.
ALTER TABLE orders ADD CONSTRAINT orders_paid_has_payment
    CHECK ((status IN ('paid', 'refunded', 'shipped', 'delivered')) = (payment_id IS NOT NULL));

ALTER TABLE orders ADD COLUMN refund_id text;
ALTER TABLE orders ADD COLUMN carrier text;
ALTER TABLE orders ADD COLUMN tracking_number text;
-- Set when the order is confirmed: unpaid by then, the deadline sweeper cancels it (application.sweep_deadlines).
ALTER TABLE orders ADD COLUMN payment_due_at timestamptz;
CREATE INDEX orders_payment_due ON orders (payment_due_at) WHERE status = 'confirmed';

-- The built-in test payment provider's own books (payments.TestPaymentProvider): what a real provider keeps at
-- its end, one row per idempotency key (the order id). Here so that tests and the fault suite can check the
-- money: taken = paid - refunded, and nothing taken for a cancelled order. A real provider's adapter never
-- touches it.
CREATE TABLE test_provider_ledger (
    order_id    bigint PRIMARY KEY,
    outcome     text NOT NULL CHECK (outcome IN ('charged', 'declined', 'voided')),
    payment_id  text,
    amount      numeric(12,2),
    error       text,
    refund_id   text,
    refunded    numeric(12,2),
    at          timestamptz NOT NULL DEFAULT now()
);
