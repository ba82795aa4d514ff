-- An order's life after payment (issue 20): the facts of OrderRefunded, OrderShipped and OrderDelivered, and
-- the summary's counts of them. Expand only: the code before never writes or reads these columns, and its
-- writes still count through the functions replaced below (its rows leave the new columns NULL: a share of 0).

ALTER TABLE orders
    ADD COLUMN refunded_amount numeric(12, 2),  -- OrderRefunded
    ADD COLUMN refunded_at     timestamptz,
    ADD COLUMN shipped_at      timestamptz,     -- OrderShipped
    ADD COLUMN delivered_at    timestamptz;     -- OrderDelivered
-- For daily's refunds; partial, since few orders are ever refunded.
CREATE INDEX orders_refunded_at ON orders (refunded_at) WHERE refunded_at IS NOT NULL;

-- No order has these facts yet, so every shard starts them at zero: nothing to count from before.
ALTER TABLE summary_counts
    ADD COLUMN orders_shipped   bigint NOT NULL DEFAULT 0,
    ADD COLUMN orders_delivered bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunds          bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunded         numeric NOT NULL DEFAULT 0;

-- The orders table's two counting functions of 002, made again with the new columns' shares (the triggers
-- name the functions, so they stay). `revenue` stays the paid amounts; the summary takes `refunded` off it.
DO $migration$
DECLARE
    counts text[] := ARRAY['orders_created', 'orders_confirmed', 'orders_rejected', 'orders_paid', 'orders_cancelled',
                           'sales_total', 'revenue', 'orders_shipped', 'orders_delivered', 'refunds', 'refunded'];
    share text[] := ARRAY['(created_at IS NOT NULL)::int', '(confirmed_at IS NOT NULL)::int',
                          '(rejected_at IS NOT NULL)::int', '(paid_at IS NOT NULL)::int',
                          '(cancelled_at IS NOT NULL)::int', 'coalesce(total, 0)', 'coalesce(paid_amount, 0)',
                          '(shipped_at IS NOT NULL)::int', '(delivered_at IS NOT NULL)::int',
                          '(refunded_at IS NOT NULL)::int', 'coalesce(refunded_amount, 0)'];
    fn record;
    shares text;
    updates text;
BEGIN
    SELECT string_agg(format('coalesce(sum(sign * %s), 0)', e), ', ' ORDER BY n),
           string_agg(format('%1$I = s.%1$I + EXCLUDED.%1$I', c), ', ' ORDER BY n)
      INTO shares, updates
      FROM unnest(share, counts) WITH ORDINALITY AS x (e, c, n);
    FOR fn IN SELECT * FROM (VALUES
        ('count_orders_inserted', 'SELECT 1 AS sign, * FROM new_rows'),
        ('count_orders_updated', 'SELECT 1 AS sign, * FROM new_rows UNION ALL SELECT -1, * FROM old_rows')
    ) AS v (name, signed_rows)
    LOOP
        EXECUTE format($f$
            CREATE OR REPLACE FUNCTION %1$I() RETURNS trigger LANGUAGE plpgsql AS $body$
            BEGIN
                INSERT INTO summary_counts AS s (shard, %2$s)
                SELECT pg_backend_pid() %% 16, %3$s FROM (%4$s) AS x
                ON CONFLICT (shard) DO UPDATE SET %5$s;
                RETURN NULL;
            END $body$$f$, fn.name, array_to_string(counts, ', '), shares, fn.signed_rows, updates);
    END LOOP;
END $migration$;
