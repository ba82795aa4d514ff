-- products: the catalogue, stock reservations per order, and reviews.

CREATE TABLE products (
    id                  bigserial PRIMARY KEY,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description         text NOT NULL DEFAULT '',
    price               numeric(12, 2) NOT NULL CHECK (price > 0),
    stock               integer NOT NULL CHECK (stock >= 0),
    low_stock_threshold integer NOT NULL DEFAULT 5 CHECK (low_stock_threshold >= 0),
    -- true once StockLow went out for the current stay at or below the threshold (one alert per crossing)
    low_stock_alerted   boolean NOT NULL DEFAULT false,
    supplier_email      text,
    -- published reviews only; the average is rating_sum / rating_count
    rating_sum          integer NOT NULL DEFAULT 0,
    rating_count        integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- One row per order this service decided, so a cancellation puts back exactly what was taken, once.
CREATE TABLE reservations (
    order_id    bigint PRIMARY KEY,
    user_id     bigint NOT NULL,
    status      text NOT NULL CHECK (status IN ('reserved', 'released', 'rejected')),
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz
);

CREATE TABLE reservation_lines (
    order_id   bigint NOT NULL REFERENCES reservations (order_id),
    product_id bigint NOT NULL REFERENCES products (id),
    quantity   integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, product_id)
);

CREATE TABLE reviews (
    id           bigserial PRIMARY KEY,
    product_id   bigint NOT NULL REFERENCES products (id),
    user_id      bigint NOT NULL,
    rating       smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment      text NOT NULL,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'published', 'rejected')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    moderated_at timestamptz,
    -- one review per customer per product
    UNIQUE (product_id, user_id)
);
CREATE INDEX reviews_published ON reviews (product_id, id) WHERE status = 'published';
