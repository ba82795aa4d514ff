"""Faults outside the handlers, at the consumer's own I/O: its COMMIT refused by the database, its settle
(the republish of a failed event to a wait queue) refused by the broker. Each delivery must still end
committed once, or retried, or parked with its reason: never acked undecided."""

from __future__ import annotations

import asyncio

from fault_base import Fault, Round, until

# A deferred constraint trigger on the inbox: checked at COMMIT, so the batch's handlers and inbox insert
# all succeed and only the COMMIT fails, with the error code in fault_commit while it holds a row.
COMMIT_FAULT = """
CREATE TABLE IF NOT EXISTS fault_commit (errcode text NOT NULL);
GRANT SELECT ON fault_commit TO PUBLIC;
CREATE OR REPLACE FUNCTION fault_commit_fails() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE code text;
BEGIN
    SELECT errcode INTO code FROM fault_commit LIMIT 1;
    IF code IS NOT NULL THEN
        RAISE EXCEPTION 'fault suite: this COMMIT fails (%)', code USING ERRCODE = code;
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS fault_commit_fails ON processed_events;
CREATE CONSTRAINT TRIGGER fault_commit_fails AFTER INSERT ON processed_events
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fault_commit_fails();
"""
NO_COMMIT_FAULT = """
DROP TRIGGER IF EXISTS fault_commit_fails ON processed_events;
DROP FUNCTION IF EXISTS fault_commit_fails();
DROP TABLE IF EXISTS fault_commit;
"""
INBOX_ROWS = "SELECT count(*)::int AS n FROM processed_events"
ERRCODES = {"P0001": "an error", "40001": "a serialization failure"}


class CommitFails(Fault):
    """Every COMMIT of a consumer's batch fails for 4 s while orders go on: nothing may be lost or twice."""

    hold = (4.0, 4.0)

    def __init__(self, service: str, errcode: str) -> None:
        self.service, self.errcode = service, errcode
        self.name = f"{service} COMMIT fails ({ERRCODES[errcode]}, {errcode})"

    async def inject(self, r: Round) -> None:
        await r.stack.script(self.service, COMMIT_FAULT)
        self._log_from = r.stack.server_log("postgres").stat().st_size
        await r.stack.sql(self.service, "INSERT INTO fault_commit VALUES ($1)", self.errcode)
        await asyncio.sleep(0.3)  # a COMMIT already under way when the switch went on may still pass
        self._inbox = (await r.stack.sql(self.service, INBOX_ROWS))[0]["n"]

    async def repair(self, r: Round) -> None:
        inbox = (await r.stack.sql(self.service, INBOX_ROWS))[0]["n"]
        await r.stack.sql(self.service, "DELETE FROM fault_commit")
        if inbox != self._inbox:
            r.problems.append(f"{inbox - self._inbox} inbox rows committed while every COMMIT should fail")
        with r.stack.server_log("postgres").open("rb") as log:
            log.seek(self._log_from)
            refused = log.read().count(b"fault suite: this COMMIT fails")
        if not refused:
            r.problems.append("no COMMIT failed: the fault never bit")
        r.notes.append(f"{refused} COMMITs of {self.service} failed with {self.errcode} in the database's log")
        r.notes.append(await replay_parked(r, self.service, "this COMMIT fails"))

    async def cleanup(self, r: Round) -> None:
        await r.stack.script(self.service, NO_COMMIT_FAULT)


class FailingSettle(Fault):
    """A handler fails once for every event (each needs one retry), while the first wait queue is unbound
    from the service's settle exchange: the broker returns each retry as unroutable. Then it is bound again
    and the handler mended; what the bus parked meanwhile is listed (with its reason) and replayed."""

    hold = (4.0, 4.0)

    def __init__(self, service: str, event_type: str, queue: str) -> None:
        self.service, self.event_type, self.queue = service, event_type, queue
        self.wait = f"{queue}.retry.1"
        self.name = f"{service} {event_type} fails once, its retry returned unroutable"

    async def inject(self, r: Round) -> None:
        # Since the switch: a lane stuck settling takes no new batch, so the failures that meet the unbound
        # queue may all come in the moment before it is unbound.
        self._since = (await r.stack.sql(self.service, "SELECT clock_timestamp() AS t"))[0]["t"]
        await r.stack.switch_handler(self.service, self.event_type, 1)
        await r.stack.unbind(self.wait, f"{self.service}.settle")
        # The broker's answer to a retry sent there now, as the settle would send it.
        self._probe = await r.stack.publish_probe(f"{self.service}.settle", self.wait)
        if "returned" not in self._probe:
            r.problems.append(f"a retry to the unbound {self.wait} was not returned: {self._probe}")

    async def repair(self, r: Round) -> None:
        failed = (await r.stack.sql(
            self.service, "SELECT count(DISTINCT event_id)::int AS n FROM fault_failures WHERE at >= $1", self._since,
        ))[0]["n"]
        await r.stack.bind(self.wait, f"{self.service}.settle")
        await r.stack.switch_handler(self.service, self.event_type, None, on=False)
        if not failed:
            r.problems.append(f"no {self.event_type} failed while the fault was on: it never bit")
        r.notes.append(
            f"{failed} {self.event_type} failed while the fault was on; a probe sent to {self.wait}: {self._probe}"
        )
        r.notes.append(await replay_parked(r, self.service, "FaultInjected"))

    async def cleanup(self, r: Round) -> None:
        await r.stack.bind(self.wait, f"{self.service}.settle")
        await r.stack.switch_handler(self.service, self.event_type, None, on=False)
        await r.stack.sql(self.service, "DELETE FROM fault_failures")



async def replay_parked(r: Round, service: str, *reasons: str) -> str:
    """Once the orders are placed and the service's wait queues empty: what the fault got parked must say
    why (a reason naming the fault), and is replayed with the CLI, as an operator would after the repair;
    the books then count every event handled once. Returns the note."""
    assert r.placing is not None
    await r.placing

    def lanes() -> list[str]:
        return [q for q in r.stack.queue_depths() if q.startswith(f"{service}.") and q.count(".") == 1]

    def retries_done() -> bool:
        return not any(n for q, n in r.stack.queue_depths().items() if q.startswith(f"{service}.") and ".retry." in q)

    await until(lambda: asyncio.to_thread(retries_done), 120, f"{service}'s wait queues empty", interval=1)
    found, replayed = [], []
    for lane in await asyncio.to_thread(lanes):
        listed = await asyncio.to_thread(r.stack.shop_events, "parked", "list", lane)
        lines = [line.split("\t") for line in listed.splitlines() if line.strip()]
        if not lines:
            continue
        found += [line[5] for line in lines]
        unexplained = [line for line in lines if not any(reason in line[5] for reason in reasons)]
        if unexplained:
            r.problems.append(f"parked from {lane} for another reason: {unexplained[:3]}")
        replayed.append(await asyncio.to_thread(r.stack.shop_events, "parked", "replay", "--all", "--queue", lane))
    if not found:
        return "nothing parked"
    why = "; ".join(sorted({reason[:100] for reason in found}))
    return f"{len(found)} parked ({why}), after the repair: " + " ".join(out.strip() for out in replayed)
