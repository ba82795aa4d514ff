"""Recording a mail the relay took as `sent` (mail.py): kept trying while the write fails, for a while.

The write fails for real: a trigger on this test's database raises on the UPDATE while a `blocked` row exists,
and counts each try in a sequence (a sequence is not rolled back with the failed statement)."""

import asyncio
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

import notifications
from notifications import db
from notifications.domain import Notice, NoticeType
from notifications.mail import _record_sent

BLOCK_UPDATES = """
CREATE TABLE blocked (why text);
CREATE SEQUENCE tries;
CREATE FUNCTION refuse_sent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM nextval('tries');
  IF EXISTS (SELECT 1 FROM blocked) THEN RAISE EXCEPTION 'test: recording refused'; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse_sent BEFORE UPDATE ON notifications FOR EACH ROW EXECUTE FUNCTION refuse_sent();
INSERT INTO blocked VALUES ('the test');
"""


@pytest.fixture
async def blocked_notice(migrated_pool):
    """(pool, id of a pending notice whose `sent` update is refused until the test deletes `blocked`)."""
    pool = await migrated_pool(Path(notifications.__file__).with_name("migrations"), checks_bans=False)
    notice = Notice(NoticeType.WELCOME, "ann@example.com", "Welcome", "Hello", user_id=7)
    [record] = await db.record_notices(pool, [(uuid.uuid4(), notice, "<test@example.com>")])
    await pool.execute(BLOCK_UPDATES)
    return pool, record.id


async def status_and_tries(pool, notice_id):
    status = await pool.fetchval("SELECT status FROM notifications WHERE id = $1", notice_id)
    return status, await pool.fetchval("SELECT last_value FROM tries")


async def test_a_sent_mail_is_recorded_once_the_database_takes_the_write_again(blocked_notice):
    pool, notice_id = blocked_notice
    recording = asyncio.create_task(_record_sent(pool, notice_id, patience=30))
    await asyncio.sleep(0.7)  # tries at 0 s, 0.2 s and 0.6 s fail; the next, at 1.4 s, is let through
    assert not recording.done()
    await pool.execute("DELETE FROM blocked")
    await asyncio.wait_for(recording, 10)
    status, tries = await status_and_tries(pool, notice_id)
    assert status == "sent" and tries == 4


async def test_past_its_patience_the_last_error_is_raised(blocked_notice):
    pool, notice_id = blocked_notice
    started = time.monotonic()
    with pytest.raises(asyncpg.RaiseError, match="recording refused"):
        await _record_sent(pool, notice_id, patience=0.5)  # 0.2 s, then a 0.4 s pause would end past it
    assert time.monotonic() - started < 0.5
    assert await status_and_tries(pool, notice_id) == ("pending", 2)
