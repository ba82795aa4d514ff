-- Login tries charged to an account from one client address (domain.charge_login_attempt). Keyed by the email
-- alone (002), a guesser who kept trying kept the account locked for its owner too, from everywhere; keyed by
-- the email and the address the gateway saw, the guesser's address waits and the owner's does not. Expand
-- only: 002's table stays for the code before, which writes it until its last process is replaced.
CREATE TABLE login_attempts_by_client (
    email         text NOT NULL,
    client        text NOT NULL,
    failures      integer NOT NULL,
    last_at       timestamptz NOT NULL,
    locked_until  timestamptz,
    PRIMARY KEY (email, client)
);
