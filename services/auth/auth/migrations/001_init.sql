-- auth: users and their refresh tokens.
CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    -- Stored normalised (lower case), so the unique index makes emails unique whatever their case.
    email         text NOT NULL UNIQUE CHECK (email = lower(email)),
    name          text,
    password_hash text NOT NULL,
    role          text NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'admin')),
    banned        boolean NOT NULL DEFAULT false,
    banned_at     timestamptz,
    banned_reason text,
    banned_by     bigint,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Opaque refresh tokens, stored only as their sha256. A family is every token rotated from one login.
CREATE TABLE refresh_tokens (
    id          bigserial PRIMARY KEY,
    token_hash  text NOT NULL UNIQUE,
    user_id     bigint NOT NULL REFERENCES users (id),
    family_id   uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    spent_at    timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_live_by_user ON refresh_tokens (user_id) WHERE revoked_at IS NULL;
