-- Login tries charged to an account (domain.charge_login_attempt) and not yet cleared by a success. Keyed by
-- the normalised email, not the user, so that guessing at an unknown email is throttled (and hashed) alike.
CREATE TABLE login_attempts (
    email         text PRIMARY KEY,
    failures      integer NOT NULL,
    last_at       timestamptz NOT NULL,
    locked_until  timestamptz
);
