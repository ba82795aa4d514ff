-- The bus's own tables, in every service's database. Idempotent: applied at each start.
CREATE TABLE IF NOT EXISTS outbox (
    id             bigserial PRIMARY KEY,
    event_id       uuid NOT NULL UNIQUE,
    event_type     text NOT NULL,
    routing_key    text NOT NULL,
    correlation_id text NOT NULL,
    body           text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    sent_at        timestamptz
);
-- The relay only ever looks for unsent rows; keep that look-up small however many sent rows remain.
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_correlation ON outbox (correlation_id);
-- Added later, nullable (older code writes and reads on without them): the W3C trace context of the span that
-- wrote the event, which the relay continues (shop_events/tracing.py). Null when tracing is off. Looked up first:
-- ALTER TABLE takes an ACCESS EXCLUSIVE lock even when there is nothing to add (see the trigger below).
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'outbox' AND column_name = 'traceparent') THEN
        ALTER TABLE outbox ADD COLUMN IF NOT EXISTS traceparent text, ADD COLUMN IF NOT EXISTS tracestate text;
    END IF;
END $$;

-- Wake the relay at commit: NOTIFY is delivered only when the writing transaction commits.
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('shop_outbox', '');
    RETURN NULL;
END $$;
-- CREATE OR REPLACE, not DROP and CREATE: DROP takes an ACCESS EXCLUSIVE lock, which deadlocked with a
-- running replica's relay (holding ROW SHARE from its SELECT ... FOR UPDATE, then wanting ROW EXCLUSIVE).
CREATE OR REPLACE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- The inbox: one row per event this service handled, written in the handler's transaction.
CREATE TABLE IF NOT EXISTS processed_events (
    event_id       uuid PRIMARY KEY,
    event_type     text NOT NULL,
    correlation_id text NOT NULL,
    queue          text NOT NULL,
    handled_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS processed_events_correlation ON processed_events (correlation_id);
-- Pruning (shop_events.inbox) finds the oldest rows by this.
CREATE INDEX IF NOT EXISTS processed_events_handled_at ON processed_events (handled_at);

-- Where a replay of the history stream got to (shop_events.history): written in the same transaction as the
-- effects of the events it replayed, so a replay that was killed resumes at next_offset. finished_at is set
-- once it caught up with end_offset, the stream's last offset when it began.
CREATE TABLE IF NOT EXISTS history_position (
    service      text PRIMARY KEY,
    next_offset  bigint NOT NULL DEFAULT 0,
    end_offset   bigint,
    replayed     bigint NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
