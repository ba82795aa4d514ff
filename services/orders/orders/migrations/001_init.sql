-- orders: initial schema.

-- The copy of the catalogue, kept from ProductCreated / ProductUpdated. Prices come only from here.
CREATE TABLE catalogue (
    product_id  bigint PRIMARY KEY,
    name        text NOT NULL,
    price       numeric(12,2) NOT NULL CHECK (price >= 0),
    stock       integer NOT NULL,
    -- occurred_at of the event that wrote this row: an older event never overwrites a newer one.
    changed_at  timestamptz NOT NULL
);

CREATE TABLE orders (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL,
    email       text NOT NULL,
    status      text NOT NULL CHECK (status IN ('pending', 'confirmed', 'rejected', 'paid', 'cancelled')),
    total       numeric(12,2) NOT NULL CHECK (total >= 0),
    payment_id  text,
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'paid') = (payment_id IS NOT NULL))
);
CREATE INDEX orders_by_user ON orders (user_id, id DESC);

CREATE TABLE order_items (
    order_id    bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line        integer NOT NULL,  -- the client's order of the lines, kept in every answer
    product_id  bigint NOT NULL,
    quantity    integer NOT NULL CHECK (quantity >= 1),
    unit_price  numeric(12,2) NOT NULL CHECK (unit_price >= 0),
    PRIMARY KEY (order_id, product_id)
);

-- Idempotency-Key: claimed before the order is written, in the same transaction, so two racing calls
-- with one key serialise on this primary key and only one order is made. The order id is taken from
-- the sequence first, hence the deferred foreign key.
CREATE TABLE idempotency_keys (
    user_id      bigint NOT NULL,
    key          text NOT NULL,
    order_id     bigint NOT NULL REFERENCES orders (id) DEFERRABLE INITIALLY DEFERRED,
    fingerprint  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
