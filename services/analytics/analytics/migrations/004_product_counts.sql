-- A product's figures kept as the facts change, as the summary's are (002): before, GET /products/{id} joined
-- every line of the product with its order per call, so a product on a hundred thousand orders cost a hundred
-- thousand rows a read. Expand only: the code before never reads this table, and its writes are counted by the
-- triggers below as the new code's are.
--
-- What a product's rows count, summed over the shards:
--   lines           the order lines naming it, whatever their order's state (the product is then known);
--   units_sold      quantity of the lines whose order is sold: paid, and neither cancelled nor refunded;
--   revenue         quantity × unit_price of those lines;
--   units_refunded  quantity of the lines whose order is refunded;
--   reviews         reviews naming it, whatever their moderation (known, too);
--   rating_sum, rating_count  the ratings of its published reviews.
CREATE TABLE product_counts (
    product_id     bigint NOT NULL,
    shard          int NOT NULL,
    lines          bigint NOT NULL DEFAULT 0,
    units_sold     bigint NOT NULL DEFAULT 0,
    revenue        numeric NOT NULL DEFAULT 0,
    units_refunded bigint NOT NULL DEFAULT 0,
    reviews        bigint NOT NULL DEFAULT 0,
    rating_sum     bigint NOT NULL DEFAULT 0,
    rating_count   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (product_id, shard)
);

-- A line's share depends on two facts that come in any order: the line (OrderCreated) and its order's state
-- (OrderPaid, OrderCancelled, OrderRefunded, on the orders row). Each pair is counted exactly once, by whichever
-- statement comes second:
--   * lines inserted: each counts with its order's state as it is now;
--   * orders whose sold or refunded state a statement changed: the change, times the lines there now.
-- Both read the other fact while holding the order's row lock (the statement that writes lines upserts their
-- order's row too, record_orders_placed), so of two transactions about one order the second sees the first's
-- commit, and the first did not see the second's fact. The statement that writes lines changes no order's
-- state (it sets the created facts only), so no pair is counted by both triggers of one statement.
--
-- The other fact is looked up by its key, row by row (LATERAL ... OFFSET 0, which the planner can't turn into a
-- join of whole tables): PL/pgSQL keeps one plan per statement for the connection's life, made for the
-- transition table of the first call, so a hash join planned for a large first statement (or a small table)
-- would scan every order at each later batch of a few events. And without JIT: a plan costed for a large first
-- statement would otherwise be compiled again at every later call (tens of milliseconds for a batch of one).
--
-- Shards as the summary's: each connection adds to pg_backend_pid() % 16. Before a product row of its shard, a
-- writer locks that shard's summary_counts row (every write to orders does so already), so the product rows of
-- one shard are only ever written under that one lock, held to commit: two writers never wait on each other's
-- product rows in opposite orders (no deadlock), whatever products their batches name.
CREATE FUNCTION lock_count_shard() RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    shard_of_mine int := pg_backend_pid() % 16;
BEGIN
    INSERT INTO summary_counts AS s (shard) VALUES (shard_of_mine)
    ON CONFLICT (shard) DO UPDATE SET products = s.products;
    RETURN shard_of_mine;
END $$;

CREATE FUNCTION count_product_lines_inserted() RETURNS trigger LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    shard_of_mine int := lock_count_shard();
BEGIN
    INSERT INTO product_counts AS c (product_id, shard, lines, units_sold, revenue, units_refunded)
    SELECT i.product_id, shard_of_mine, count(*),
           coalesce(sum(i.quantity) FILTER (WHERE o.sold), 0),
           coalesce(sum(i.quantity * i.unit_price) FILTER (WHERE o.sold), 0),
           coalesce(sum(i.quantity) FILTER (WHERE o.refunded), 0)
    FROM new_rows AS i
    LEFT JOIN LATERAL (SELECT paid_at IS NOT NULL AND cancelled_at IS NULL AND refunded_at IS NULL AS sold,
                              refunded_at IS NOT NULL AS refunded
                       FROM orders WHERE orders.order_id = i.order_id OFFSET 0) AS o ON true
    GROUP BY i.product_id
    ORDER BY i.product_id
    ON CONFLICT (product_id, shard) DO UPDATE
    SET lines = c.lines + EXCLUDED.lines, units_sold = c.units_sold + EXCLUDED.units_sold,
        revenue = c.revenue + EXCLUDED.revenue, units_refunded = c.units_refunded + EXCLUDED.units_refunded;
    RETURN NULL;
END $$;

-- The orders' state changes of one statement, per order (+1 became sold or refunded, -1 no longer), times the
-- lines known now. An insert starts from nothing; an update's old rows are taken off.
CREATE FUNCTION count_product_sales_inserted() RETURNS trigger LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    shard_of_mine int;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows WHERE paid_at IS NOT NULL OR refunded_at IS NOT NULL) THEN
        RETURN NULL;  -- nothing sold or refunded: the common case (a created, confirmed or rejected order)
    END IF;
    shard_of_mine := lock_count_shard();  -- held already (002's orders_counted_insert fires first), to be sure
    INSERT INTO product_counts AS c (product_id, shard, units_sold, revenue, units_refunded)
    SELECT i.product_id, shard_of_mine, sum(i.quantity * d.sold), sum(i.quantity * i.unit_price * d.sold),
           sum(i.quantity * d.refunded)
    FROM (SELECT order_id,
                 (paid_at IS NOT NULL AND cancelled_at IS NULL AND refunded_at IS NULL)::int AS sold,
                 (refunded_at IS NOT NULL)::int AS refunded
          FROM new_rows) AS d
    JOIN LATERAL (SELECT product_id, quantity, unit_price FROM order_items WHERE order_items.order_id = d.order_id
                  OFFSET 0) AS i ON true
    WHERE d.sold <> 0 OR d.refunded <> 0
    GROUP BY i.product_id
    ORDER BY i.product_id
    ON CONFLICT (product_id, shard) DO UPDATE
    SET units_sold = c.units_sold + EXCLUDED.units_sold, revenue = c.revenue + EXCLUDED.revenue,
        units_refunded = c.units_refunded + EXCLUDED.units_refunded;
    RETURN NULL;
END $$;

-- An update of orders (every event about an order but its creation) runs this after 002's orders_counted_update
-- (statement triggers of one event fire in name order), which has locked the shard already.
CREATE FUNCTION count_product_sales_updated() RETURNS trigger LANGUAGE plpgsql SET jit = off AS $$
BEGIN
    INSERT INTO product_counts AS c (product_id, shard, units_sold, revenue, units_refunded)
    SELECT i.product_id, pg_backend_pid() % 16, sum(i.quantity * d.sold), sum(i.quantity * i.unit_price * d.sold),
           sum(i.quantity * d.refunded)
    FROM (SELECT order_id, sum(sign * sold) AS sold, sum(sign * refunded) AS refunded
          FROM (SELECT 1 AS sign, order_id,
                       (paid_at IS NOT NULL AND cancelled_at IS NULL AND refunded_at IS NULL)::int AS sold,
                       (refunded_at IS NOT NULL)::int AS refunded
                FROM new_rows
                UNION ALL
                SELECT -1, order_id,
                       (paid_at IS NOT NULL AND cancelled_at IS NULL AND refunded_at IS NULL)::int,
                       (refunded_at IS NOT NULL)::int
                FROM old_rows) AS signed
          GROUP BY order_id
          HAVING sum(sign * sold) <> 0 OR sum(sign * refunded) <> 0) AS d
    JOIN LATERAL (SELECT product_id, quantity, unit_price FROM order_items WHERE order_items.order_id = d.order_id
                  OFFSET 0) AS i ON true
    GROUP BY i.product_id
    ORDER BY i.product_id
    ON CONFLICT (product_id, shard) DO UPDATE
    SET units_sold = c.units_sold + EXCLUDED.units_sold, revenue = c.revenue + EXCLUDED.revenue,
        units_refunded = c.units_refunded + EXCLUDED.units_refunded;
    RETURN NULL;
END $$;

-- A review's share: one review, and its rating while published. An update (a verdict, or the submission after
-- its verdict) adds the new rows' share less the old rows', per product.
CREATE FUNCTION count_product_reviews_inserted() RETURNS trigger LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    shard_of_mine int := lock_count_shard();
BEGIN
    INSERT INTO product_counts AS c (product_id, shard, reviews, rating_sum, rating_count)
    SELECT product_id, shard_of_mine, count(*), coalesce(sum(rating) FILTER (WHERE status = 'published'), 0),
           count(*) FILTER (WHERE status = 'published')
    FROM new_rows
    GROUP BY product_id
    ORDER BY product_id
    ON CONFLICT (product_id, shard) DO UPDATE
    SET reviews = c.reviews + EXCLUDED.reviews, rating_sum = c.rating_sum + EXCLUDED.rating_sum,
        rating_count = c.rating_count + EXCLUDED.rating_count;
    RETURN NULL;
END $$;

CREATE FUNCTION count_product_reviews_updated() RETURNS trigger LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    shard_of_mine int := lock_count_shard();
BEGIN
    INSERT INTO product_counts AS c (product_id, shard, reviews, rating_sum, rating_count)
    SELECT product_id, shard_of_mine, sum(sign), coalesce(sum(sign * rating) FILTER (WHERE status = 'published'), 0),
           coalesce(sum(sign) FILTER (WHERE status = 'published'), 0)
    FROM (SELECT 1 AS sign, product_id, rating, status FROM new_rows
          UNION ALL SELECT -1, product_id, rating, status FROM old_rows) AS signed
    GROUP BY product_id
    ORDER BY product_id
    ON CONFLICT (product_id, shard) DO UPDATE
    SET reviews = c.reviews + EXCLUDED.reviews, rating_sum = c.rating_sum + EXCLUDED.rating_sum,
        rating_count = c.rating_count + EXCLUDED.rating_count;
    RETURN NULL;
END $$;

-- Named to fire after 002's orders_counted_* (statement triggers of one event fire in name order), which lock
-- the shard first.
CREATE TRIGGER order_items_products_counted_insert AFTER INSERT ON order_items REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_product_lines_inserted();
CREATE TRIGGER orders_products_counted_insert AFTER INSERT ON orders REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_product_sales_inserted();
CREATE TRIGGER orders_products_counted_update AFTER UPDATE ON orders
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_product_sales_updated();
CREATE TRIGGER reviews_products_counted_insert AFTER INSERT ON reviews REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_product_reviews_inserted();
CREATE TRIGGER reviews_products_counted_update AFTER UPDATE ON reviews
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_product_reviews_updated();

-- The facts already there, counted once into shard -1: the triggers above hold each table's lock until this
-- migration commits, so no write falls between this count and the first one they make.
INSERT INTO product_counts (product_id, shard, lines, units_sold, revenue, units_refunded, reviews, rating_sum, rating_count)
SELECT product_id, -1, sum(lines), sum(units_sold), sum(revenue), sum(units_refunded), sum(reviews), sum(rating_sum),
       sum(rating_count)
FROM (
    SELECT i.product_id, count(*) AS lines,
           coalesce(sum(i.quantity) FILTER (WHERE o.sold), 0) AS units_sold,
           coalesce(sum(i.quantity * i.unit_price) FILTER (WHERE o.sold), 0) AS revenue,
           coalesce(sum(i.quantity) FILTER (WHERE o.refunded), 0) AS units_refunded,
           0 AS reviews, 0 AS rating_sum, 0 AS rating_count
    FROM order_items AS i
    LEFT JOIN (SELECT order_id, paid_at IS NOT NULL AND cancelled_at IS NULL AND refunded_at IS NULL AS sold,
                      refunded_at IS NOT NULL AS refunded
               FROM orders) AS o USING (order_id)
    GROUP BY i.product_id
    UNION ALL
    SELECT product_id, 0, 0, 0, 0, count(*), coalesce(sum(rating) FILTER (WHERE status = 'published'), 0),
           count(*) FILTER (WHERE status = 'published')
    FROM reviews
    GROUP BY product_id
) AS facts
GROUP BY product_id;
