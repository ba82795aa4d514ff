-- The summary's figures kept as the facts change, so a read costs the same at a million orders as at ten
-- (before, it counted every row of orders, users, reviews and products per call). Statement triggers on
-- the fact tables add what each statement changed, the new rows' share less the old rows', so the counts
-- follow the facts exactly in any arrival order (and a redelivery the inbox skips changes no fact). Each
-- connection adds to its own shard, so replicas' batches never queue on one row; a read sums the shards.
-- Expand only: the code before never reads this table.
CREATE TABLE summary_counts (
    shard             int PRIMARY KEY,
    users_registered  bigint NOT NULL DEFAULT 0,
    users_banned      bigint NOT NULL DEFAULT 0,
    products          bigint NOT NULL DEFAULT 0,
    orders_created    bigint NOT NULL DEFAULT 0,
    orders_confirmed  bigint NOT NULL DEFAULT 0,
    orders_rejected   bigint NOT NULL DEFAULT 0,
    orders_paid       bigint NOT NULL DEFAULT 0,
    orders_cancelled  bigint NOT NULL DEFAULT 0,
    sales_total       numeric NOT NULL DEFAULT 0,
    revenue           numeric NOT NULL DEFAULT 0,
    reviews           bigint NOT NULL DEFAULT 0,
    moderated         bigint NOT NULL DEFAULT 0
);

-- What the rows of each table count: (column of summary_counts, its share of one row). For every table a
-- function a statement event (a transition table belongs to one event): inserted rows count once (`sign`
-- 1); for updated rows, the new versions count and the old ones are taken off (-1). An upsert fires both,
-- each with its own rows. Static SQL in each function, so its plan is made once per connection.
DO $migration$
DECLARE
    spec record;
    columns text;
    shares text;
    updates text;
BEGIN
    FOR spec IN SELECT * FROM (VALUES
        ('orders', ARRAY['orders_created', 'orders_confirmed', 'orders_rejected', 'orders_paid', 'orders_cancelled',
                         'sales_total', 'revenue'],
                   ARRAY['(created_at IS NOT NULL)::int', '(confirmed_at IS NOT NULL)::int', '(rejected_at IS NOT NULL)::int',
                         '(paid_at IS NOT NULL)::int', '(cancelled_at IS NOT NULL)::int', 'coalesce(total, 0)',
                         'coalesce(paid_amount, 0)']),
        ('users', ARRAY['users_registered', 'users_banned'],
                  ARRAY['(registered_at IS NOT NULL)::int', '(banned_at IS NOT NULL)::int']),
        ('reviews', ARRAY['reviews', 'moderated'],
                    ARRAY['(submitted_at IS NOT NULL)::int', '(moderated_at IS NOT NULL)::int']),
        ('products', ARRAY['products'], ARRAY['1'])
    ) AS specs (name, counts, share)
    LOOP
        columns := array_to_string(spec.counts, ', ');
        SELECT string_agg(format('coalesce(sum(sign * %s), 0)', e), ', ' ORDER BY n),
               string_agg(format('%1$I = s.%1$I + EXCLUDED.%1$I', c), ', ' ORDER BY n)
          INTO shares, updates
          FROM unnest(spec.share, spec.counts) WITH ORDINALITY AS x (e, c, n);
        EXECUTE format($f$
            CREATE FUNCTION %1$I() RETURNS trigger LANGUAGE plpgsql AS $body$
            BEGIN
                INSERT INTO summary_counts AS s (shard, %2$s)
                SELECT pg_backend_pid() %% 16, %3$s FROM (SELECT 1 AS sign, * FROM new_rows) AS x
                ON CONFLICT (shard) DO UPDATE SET %4$s;
                RETURN NULL;
            END $body$$f$, 'count_' || spec.name || '_inserted', columns, shares, updates);
        EXECUTE format($f$
            CREATE FUNCTION %1$I() RETURNS trigger LANGUAGE plpgsql AS $body$
            BEGIN
                INSERT INTO summary_counts AS s (shard, %2$s)
                SELECT pg_backend_pid() %% 16, %3$s
                FROM (SELECT 1 AS sign, * FROM new_rows UNION ALL SELECT -1, * FROM old_rows) AS x
                ON CONFLICT (shard) DO UPDATE SET %4$s;
                RETURN NULL;
            END $body$$f$, 'count_' || spec.name || '_updated', columns, shares, updates);
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION %I()', spec.name || '_counted_insert', spec.name,
                       'count_' || spec.name || '_inserted');
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION %I()', spec.name || '_counted_update', spec.name,
                       'count_' || spec.name || '_updated');
    END LOOP;
END $migration$;

-- The facts already there, counted once: the triggers above hold each table's lock until this migration
-- commits, so no write falls between this count and the first one they make.
INSERT INTO summary_counts (shard, users_registered, users_banned, products, orders_created, orders_confirmed,
                            orders_rejected, orders_paid, orders_cancelled, sales_total, revenue, reviews, moderated)
SELECT -1, u.registered, u.banned, p.products, o.created, o.confirmed, o.rejected, o.paid, o.cancelled, o.sales, o.revenue,
       r.submitted, r.moderated
FROM (SELECT count(created_at) AS created, count(confirmed_at) AS confirmed, count(rejected_at) AS rejected,
             count(paid_at) AS paid, count(cancelled_at) AS cancelled,
             coalesce(sum(total), 0) AS sales, coalesce(sum(paid_amount), 0) AS revenue FROM orders) AS o,
     (SELECT count(registered_at) AS registered, count(banned_at) AS banned FROM users) AS u,
     (SELECT count(submitted_at) AS submitted, count(moderated_at) AS moderated FROM reviews) AS r,
     (SELECT count(*) AS products FROM products) AS p;
