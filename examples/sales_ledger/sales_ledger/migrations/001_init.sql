-- sales_ledger: one row per order, from OrderCreated and OrderPaid; every row is a fact from events.
CREATE TABLE ledger (
    order_id    bigint PRIMARY KEY,
    total       numeric(12, 2),  -- OrderCreated
    paid_amount numeric(12, 2)   -- OrderPaid
);
