-- A payment in flight (application.pay_order): written before the provider is called, so that no connection
-- or row lock is held while it answers, and removed with the outcome. A second pay meanwhile answers 409.
-- One left behind by a crash is taken over after PAYMENT_ATTEMPT_SECONDS, with the same idempotency key
-- towards the provider (the order id), so that it can't charge twice. Expand only: the code before never reads it.
CREATE TABLE payment_attempts (
    order_id    bigint PRIMARY KEY REFERENCES orders (id),
    started_at  timestamptz NOT NULL DEFAULT now()
);
