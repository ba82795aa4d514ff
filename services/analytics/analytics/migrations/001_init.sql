-- analytics: facts kept per user, order, order line, product and review, each keyed by its own id.
-- Every handler is one upsert into these, so events may arrive in any order and figures are computed
-- at query time from what is known; a fact that has not arrived yet is simply NULL.

CREATE TABLE users (
    user_id       bigint PRIMARY KEY,
    registered_at timestamptz,              -- UserRegistered's occurred_at
    banned_at     timestamptz               -- UserBanned's occurred_at
);
CREATE INDEX users_registered_at ON users (registered_at);

CREATE TABLE products (
    product_id bigint PRIMARY KEY,
    name       text NOT NULL
);

CREATE TABLE orders (
    order_id     bigint PRIMARY KEY,
    user_id      bigint,                    -- NULL only until an event naming the user arrives
    total        numeric(12, 2),            -- from OrderCreated
    created_at   timestamptz,               -- OrderCreated's occurred_at; NULL until it arrives
    confirmed_at timestamptz,               -- StockReserved
    rejected_at  timestamptz,               -- StockRejected
    paid_amount  numeric(12, 2),            -- OrderPaid
    paid_at      timestamptz,
    cancelled_at timestamptz                -- OrderCancelled
);
CREATE INDEX orders_created_at ON orders (created_at);
CREATE INDEX orders_paid_at ON orders (paid_at);

-- The lines of OrderCreated; what they sold counts only once the order is paid (and not cancelled).
CREATE TABLE order_items (
    order_id   bigint NOT NULL,
    line       int NOT NULL,
    product_id bigint NOT NULL,
    quantity   int NOT NULL,
    unit_price numeric(12, 2) NOT NULL,
    PRIMARY KEY (order_id, line)
);
CREATE INDEX order_items_product ON order_items (product_id);

CREATE TABLE reviews (
    review_id    bigint PRIMARY KEY,
    product_id   bigint NOT NULL,
    user_id      bigint NOT NULL,
    rating       int NOT NULL,
    submitted_at timestamptz,               -- ProductReviewed's occurred_at
    status       text,                      -- ReviewModerated: 'published' or 'rejected'; NULL while pending
    moderated_at timestamptz
);
CREATE INDEX reviews_product ON reviews (product_id);
