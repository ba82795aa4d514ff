"""kill -9: one process of a service at a random moment, or every process of a service at the moment that
matters to it, found from the outside (its database, the SMTP sink), never by making its code wait."""

from __future__ import annotations

import asyncio
import random

import asyncpg
from books import mail_ids
from fault_base import Fault, Round, until
from stack import SERVICES

OUTBOX_UNSENT = "SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL"


class Kill9(Fault):
    """kill -9 one process of a service (its API, consumers and relay at once), then start it again."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.name = f"kill -9 {service}"

    async def inject(self, r: Round) -> None:
        r.stack.kill9(self.service)
        if r.stack.replicas > 1:
            r.notes.append(f"killed {self.service}; {self.service}-2 went on alone")

    async def repair(self, r: Round) -> None:
        await asyncio.to_thread(r.stack.up)


class KillRandom(Fault):
    """kill -9 a process of a service drawn by a seeded random, at a drawn moment; the seed is in the notes."""

    name = "kill -9 a random service"

    def __init__(self, seed: int) -> None:
        self.seed = seed

    async def inject(self, r: Round) -> None:
        draw = random.Random(self.seed)
        service = draw.choice(SERVICES)
        process = draw.choice(r.stack.process_names(service))
        delay = draw.uniform(0.0, 2.0)
        await asyncio.sleep(delay)
        r.stack.kill9(process)
        r.notes.append(f"seed {self.seed}: killed {process} {delay:.1f} s after the fault's start (SHOP_FAULT_SEED={self.seed} repeats it)")
        if service == "notifications":
            window = await open_mail_window(r)
            r.notes.append(f"{len(window)} mails in the sink but not yet recorded sent at the kill (the admitted window)")

    async def repair(self, r: Round) -> None:
        await asyncio.to_thread(r.stack.up)


# The relay's fetch sees no unsent row while this policy is on: committed events stay in the outbox,
# unpublished, as after a commit the relay has not reached yet. (postgres, the test's role, bypasses it.)
HIDE_UNSENT = """
ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS fault_hide_unsent ON outbox;
CREATE POLICY fault_hide_unsent ON outbox USING (sent_at IS NOT NULL) WITH CHECK (true);
"""
SHOW_UNSENT = """
DROP POLICY IF EXISTS fault_hide_unsent ON outbox;
ALTER TABLE outbox NO FORCE ROW LEVEL SECURITY;
ALTER TABLE outbox DISABLE ROW LEVEL SECURITY;
"""
# The relay's UPDATE that marks published rows sent waits on an advisory lock the test holds.
MARKING_LOCK = 0x5140_5E17
HOLD_MARKING = f"""
CREATE OR REPLACE FUNCTION fault_hold_marking() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared({MARKING_LOCK});
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS fault_hold_marking ON outbox;
CREATE TRIGGER fault_hold_marking BEFORE UPDATE ON outbox FOR EACH STATEMENT EXECUTE FUNCTION fault_hold_marking();
"""
RELEASE_MARKING = "DROP TRIGGER IF EXISTS fault_hold_marking ON outbox"
MARKING_WAITS = (
    "SELECT count(*)::int AS n FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
)


class KillInWindow(Fault):
    """Let committed events pile up in a service's outbox, then kill -9 every process of it. Kind "relay":
    a row-level security policy hides unsent rows from the relay's fetch (committed, not published). Kind
    "sent": a trigger holds the relay's UPDATE that marks rows sent (published, not marked sent)."""

    hold = (0.5, 3.0)

    def __init__(self, service: str, kind: str) -> None:
        self.service, self.kind = service, kind
        self.name = f"kill -9 {service} between commit and publish" if kind == "relay" else \
            f"kill -9 {service} between publish and marked sent"
        self._lock: asyncpg.Connection | None = None

    async def inject(self, r: Round) -> None:
        if self.kind == "relay":
            await r.stack.script(self.service, HIDE_UNSENT)
        else:
            self._lock = await asyncpg.connect(r.stack.database_url(self.service))
            await self._lock.execute("SELECT pg_advisory_lock($1)", MARKING_LOCK)
            await r.stack.script(self.service, HOLD_MARKING)

        async def unsent() -> int:
            rows = await r.stack.sql(self.service, OUTBOX_UNSENT)
            return rows[0]["n"] >= 10 and rows[0]["n"]

        waiting = await until(unsent, 60, f"{self.service}'s outbox holding events")
        held = 0
        if self.kind == "sent":
            async def relays_waiting() -> int:
                return (await r.stack.sql(self.service, MARKING_WAITS))[0]["n"]

            held = await until(relays_waiting, 30, f"{self.service}'s relay published and waiting to mark rows sent")
        await asyncio.sleep(0.5)
        r.stack.kill9(*r.stack.process_names(self.service))
        unsent_now = (await r.stack.sql(self.service, OUTBOX_UNSENT))[0]["n"]
        await self._release(r)
        note = f"{unsent_now} outbox rows unsent at the kill ({waiting} when it was decided)"
        r.notes.append(note + (f"; {held} relay(s) had published and were waiting to mark rows sent" if held else ""))

    async def repair(self, r: Round) -> None:
        await asyncio.to_thread(r.stack.up)

    async def _release(self, r: Round) -> None:
        if self.kind == "relay":
            await r.stack.script(self.service, SHOW_UNSENT)
            return
        if self._lock is not None:  # first the lock: the trigger can't go while a held UPDATE waits on it
            await self._lock.close()
            self._lock = None
        await r.stack.script(self.service, RELEASE_MARKING)

    async def cleanup(self, r: Round) -> None:
        await self._release(r)


# This round's mails (id > $1) whose event is not committed yet: `sent` ones the SMTP sink took, `pending`
# ones it may or may not have.
SENT_NOT_COMMITTED = """
SELECT n.message_id, n.status FROM notifications n
WHERE n.id > $1 AND NOT EXISTS (SELECT 1 FROM processed_events p WHERE p.event_id = n.event_id)
"""


class KillMidMail(Fault):
    """kill -9 every notifications process while a batch is half done: some of its mails are in the SMTP
    sink and recorded sent, its events not yet committed (the database shows it). The broker delivers those
    events again; at most once means none of those mails is sent again. The one window mail.py admits
    (the sink said 250, `sent` not yet committed) is found the same way and named in the notes."""

    name = "kill -9 notifications with mails sent, batch not committed"
    hold = (1.0, 10.0)
    tries = 5

    async def inject(self, r: Round) -> None:
        conn = await asyncpg.connect(r.stack.database_url("notifications"))
        try:
            start = await conn.fetchval("SELECT coalesce(max(id), 0) FROM notifications")
            for attempt in range(1, self.tries + 1):
                await until(lambda: self._mid_batch(conn, start), 60, "a notifications batch with mails sent", interval=0.005)
                r.stack.kill9(*r.stack.process_names("notifications"))
                rows = await conn.fetch(SENT_NOT_COMMITTED, start)  # frozen now: nobody is left to change them
                sent = [row["message_id"] for row in rows if row["status"] == "sent"]
                open_window = await open_mail_window(r)  # after every kill, this one's or not
                if sent:
                    r.notes.append(
                        f"kill {attempt}: {len(sent)} mails sent for events not committed (must not be sent again);"
                        f" {len(open_window)} in the sink but not yet recorded sent (the admitted window)"
                    )
                    return
                await asyncio.to_thread(r.stack.up)  # the batch committed before the kill: once more
            r.problems.append(f"no kill in {self.tries} tries landed while mails were sent and their batch open")
        finally:
            await conn.close()

    @staticmethod
    async def _mid_batch(conn: asyncpg.Connection, start: int) -> bool:
        return any(row["status"] == "sent" for row in await conn.fetch(SENT_NOT_COMMITTED, start))

    async def repair(self, r: Round) -> None:
        await asyncio.to_thread(r.stack.up)


async def open_mail_window(r: Round) -> set[str]:
    """Right after a kill of notifications: the mails the SMTP sink took whose row is still `pending` (the
    window mail.py admits, between the relay's 250 and the `sent` commit). Those alone may come twice."""
    rows = await r.stack.sql(
        "notifications",
        "SELECT message_id FROM notifications WHERE status = 'pending' AND created_at > now() - interval '10 minutes'",
    )
    window = {row["message_id"] for row in rows} & set(mail_ids(r.stack))
    r.admitted_copies |= window
    return window
