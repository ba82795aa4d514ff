-- notifications: its copy of users (from UserRegistered), of orders (from OrderCreated), and every mail it sends.

CREATE TABLE users (
    user_id    bigint PRIMARY KEY,
    email      text NOT NULL,
    name       text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Which customer an order belongs to, so later order events know where to write.
CREATE TABLE orders (
    order_id   bigint PRIMARY KEY,
    user_id    bigint NOT NULL,
    email      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per mail. Written outside the consumer's batch transaction (see handlers.py), so the record
-- that the relay took a mail survives any rollback and a redelivered event never sends it again.
CREATE TABLE notifications (
    id         bigserial PRIMARY KEY,
    event_id   uuid NOT NULL,
    user_id    bigint,
    audience   text NOT NULL CHECK (audience IN ('customer', 'staff')),
    type       text NOT NULL,
    subject    text NOT NULL,
    body       text NOT NULL,
    recipient  text NOT NULL,
    channel    text NOT NULL DEFAULT 'email' CHECK (channel = 'email'),
    status     text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent')),
    message_id text NOT NULL,
    attempts   int NOT NULL DEFAULT 0,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz,
    UNIQUE (event_id, type, recipient)
);
CREATE INDEX notifications_of_user ON notifications (user_id, created_at DESC, id DESC) WHERE audience = 'customer';
CREATE INDEX notifications_for_staff ON notifications (created_at DESC, id DESC) WHERE audience = 'staff';
