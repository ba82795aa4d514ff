"""Sending mail: the SMTP relay adapter, and the post room that sends each event's mail at most once.

At most once per event: the mail's row is committed as `pending` before the relay is asked, and as `sent`
right after the relay accepted, each on its own pool connection and outside the consumer's transaction.
A redelivered event finds `sent` and does not send again, whatever happened to the batch afterwards
(handler failed on a later mail, commit lost, process killed before the ack). The only window left is
between the relay's "250 accepted" and the `sent` commit (one round trip to PostgreSQL): a crash exactly
there sends the mail once more, with the same Message-ID. Never lost: the event is acked only after its
handler returned, and a relay that is down or answers 4xx/5xx raises, so the bus retries through its wait
queues and, past the last attempt, parks the event with the reason (the row stays `pending`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from email.message import EmailMessage
from email.utils import format_datetime
from typing import NamedTuple

import aiosmtplib
import asyncpg
import tenacity
from aiosmtplib.email import flatten_message
from opentelemetry import trace
from shop_events import Event, EventData, history
from shop_events.envelope import now_utc

from . import db
from .config import Settings
from .domain import Notice, message_id

log = logging.getLogger("notifications.mail")
tracer = trace.get_tracer("notifications.mail")  # a no-op unless tracing is on (shop_common.tracing)


class Mail(NamedTuple):
    message_id: str
    content: bytes | EmailMessage  # bytes: written out already (a plain mail); else flattened at the send


PLAIN_HEADERS = (("Content-Type", 'text/plain; charset="utf-8"'), ("Content-Transfer-Encoding", "7bit"), ("MIME-Version", "1.0"))
_FROM_LINE = re.compile(r"^From ", re.MULTILINE)  # the generator would write it ">From "


def _header(name: str, value: str) -> str | None:
    """The header line as the generator writes it, or None where it would encode or fold it (EmailMessage then).
    A line over 78 characters with nothing to fold at (a Message-ID) goes whole on a line of its own."""
    if not value.isascii() or "\n" in value or "\r" in value:
        return None
    if len(name) + 2 + len(value) <= 78:
        return f"{name}: {value}\n"
    if any(c in value for c in " \t;,"):
        return None
    return f"{name}: \n {value}\n"


def _plain_body(text: str) -> bool:
    """ASCII, no CR, no line over 78 characters and none the generator would escape: written as it is (7bit)."""
    return text.isascii() and "\r" not in text and all(len(line) <= 78 for line in text.split("\n")) and not (
        _FROM_LINE.search(text)
    )


class SmtpRelay:
    """Hands one mail to the SMTP relay; raises unless the relay accepted it.

    The connections are kept and reused, one mail transaction after another (MAIL, RCPT, DATA), up to
    `max_connections` at once: a mail costs no TCP connect, EHLO or QUIT, nor the lookup of this host's name
    that aiosmtplib makes (in a thread) for every new connection's EHLO. A connection the relay closed while it
    was idle (a restart, its idle limit) is found closed before use, or fails on MAIL, before anything of the
    mail was sent: the mail goes on a new connection. Any other failure drops the connection and raises, as a
    send on a new connection would (the event then retries through the wait queues)."""

    def __init__(self, host: str, port: int, sender: str, timeout: float, max_connections: int = 4) -> None:
        self.host, self.port, self.sender, self.timeout = host, port, sender, timeout
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._local_hostname = socket.gethostname()  # EHLO's name, once (aiosmtplib would look up the FQDN each time)
        self.connections_opened = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpRelay:
        return cls(settings.smtp_host, settings.smtp_port, settings.mail_from, settings.smtp_timeout_seconds)

    def compose(self, notice: Notice, mail_id: str) -> Mail:
        """The mail, text/plain in UTF-8. Written out here, as bytes, when every header and body line is ASCII and
        at most 78 characters (a header with nothing to fold at goes on a line of its own) and no body line starts
        with "From ": exactly the bytes the email package's generator would write for it (a compat32 message,
        7bit; tests/test_mail_format.py compares them), at a fraction of the cost (it makes a Header object and
        folds every header: a sixth of a mail's CPU). Else built by EmailMessage, which encodes, and flattened
        with the relay's options at the send."""
        headers = {
            "From": self.sender, "To": notice.recipient, "Subject": notice.subject, "Message-ID": mail_id,
            "Date": format_datetime(now_utc()),
        }
        text = notice.body if notice.body.endswith("\n") else notice.body + "\n"
        lines = [_header(name, value) for name, value in (*headers.items(), *PLAIN_HEADERS)]
        if None not in lines and _plain_body(text):
            head = "".join(line for line in lines if line is not None)
            return Mail(mail_id, f"{head}\n{text}".encode("ascii"))
        mail = EmailMessage()
        for name, value in headers.items():
            mail[name] = value
        mail.set_content(notice.body)
        return Mail(mail_id, mail)

    async def send(self, mail: Mail, recipient: str) -> None:
        # Connection refused, a timeout, or any 4xx/5xx reply raises (aiosmtplib.SMTPException or OSError).
        attributes: dict[str, str | int] = {
            "server.address": self.host, "server.port": self.port, "shop.mail.message_id": mail.message_id,
        }
        with tracer.start_as_current_span("smtp send", kind=trace.SpanKind.CLIENT, attributes=attributes):
            async with self._slots:
                smtp, reused = await self._take()
                try:
                    try:
                        options = await self._mail_from(smtp, recipient)
                    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPResponseException, OSError) as exc:
                        if not reused or (isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code != 421):
                            raise
                        # Closed by the relay while idle: nothing of this mail was sent on it.
                        smtp.close()
                        smtp = await self._connect()
                        options = await self._mail_from(smtp, recipient)
                    try:
                        await smtp.rcpt(recipient)
                    except aiosmtplib.SMTPRecipientRefused as refused:  # as aiosmtplib.send raises it
                        raise aiosmtplib.SMTPRecipientsRefused([refused]) from refused
                    content = mail.content
                    if not isinstance(content, bytes):
                        content = flatten_message(content, utf8="SMTPUTF8" in options, cte_type=_cte(options))
                    await smtp.data(content)
                except BaseException:
                    smtp.close()  # in an unknown state: the next mail takes another
                    raise
                self._idle.append(smtp)

    async def _mail_from(self, smtp: aiosmtplib.SMTP, recipient: str) -> list[str]:
        """MAIL FROM with the options aiosmtplib.send would give (8BITMIME when offered, SMTPUTF8 when needed)."""
        options = [] if f"{self.sender}{recipient}".isascii() else ["SMTPUTF8"]
        if smtp.supports_extension("8BITMIME"):
            options.append("BODY=8BITMIME")
        await smtp.mail(self.sender, options=options)
        return options

    async def _take(self) -> tuple[aiosmtplib.SMTP, bool]:
        """An idle connection that is still open (True), else a new one (False)."""
        while self._idle:
            smtp = self._idle.pop()
            if smtp.is_connected:
                return smtp, True
            smtp.close()
        return await self._connect(), False

    async def _connect(self) -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, timeout=self.timeout, local_hostname=self._local_hostname
        )
        await smtp.connect()
        if smtp.last_ehlo_response is None:
            await smtp.ehlo()
        self.connections_opened += 1
        return smtp

    async def aclose(self) -> None:
        """QUIT the idle connections (at the app's stop)."""
        idle, self._idle = self._idle, []
        for smtp in idle:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                smtp.close()


def _cte(options: list[str]) -> str:
    return "8bit" if "BODY=8BITMIME" in options else "7bit"


class PostRoom:
    """What handlers call to send a notice: record it, send it unless an earlier delivery did, record that."""

    def __init__(self, relay: SmtpRelay, staff_email: str, pool: asyncpg.Pool) -> None:
        self.relay = relay
        self.staff_email = staff_email
        self._pool = pool

    async def aclose(self) -> None:
        await self.relay.aclose()

    async def send(self, event: Event[EventData], notice: Notice) -> None:
        await self.send_all([(event, notice)])

    async def send_all(self, mails: list[tuple[Event[EventData], Notice]]) -> None:
        """Each mail as `send` sends one, a batch handler's together: their rows made pending in one statement,
        then handed to the relay side by side (over its few connections), each recorded `sent` as soon as the
        relay took it. Then the first failure, if any, is raised: the consumer redoes the batch event by event,
        and a mail recorded `sent` is not sent again."""
        if history.replaying():  # a rebuild or backfill replays old events: their mail went out (or is moot)
            return
        ids = [message_id(event.event_id, notice.type, self.relay.sender) for event, notice in mails]
        records = await db.record_notices(self._pool, [(e.event_id, n, i) for (e, n), i in zip(mails, ids, strict=True)])
        outcomes = await asyncio.gather(
            *(self._send(notice, mail_id, record) for (_, notice), mail_id, record in zip(mails, ids, records, strict=True)),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _send(self, notice: Notice, mail_id: str, record: db.MailRecord) -> None:
        if record.status == "sent":
            log.info("mail already sent; not sending again", extra={"notice_id": record.id, "type": notice.type.value})
            return
        try:
            await self.relay.send(self.relay.compose(notice, mail_id), notice.recipient)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await db.note_failure(self._pool, record.id, f"{type(exc).__name__}: {exc}")
            raise
        await _record_sent(self._pool, record.id)


async def _record_sent(pool: asyncpg.Pool, notice_id: int, patience: float = 120.0) -> None:
    """The relay has the mail: try hard to record it, since giving up here means the retry sends it again.

    A PostgreSQL restart refuses connections (OSError) for seconds, and a pooled connection it cut can fail
    with asyncpg's InternalClientError: whatever the error, keep writing (every 0.2 s doubling up to 2 s) for
    `patience` seconds, then raise the last error."""

    def log_retry(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("could not record a sent mail; trying again", extra={"notice_id": notice_id, "error": repr(error)})

    async for attempt in tenacity.AsyncRetrying(
        stop=tenacity.stop_before_delay(patience),  # no pause that would end past the patience
        wait=tenacity.wait_exponential(multiplier=0.2, max=2.0),
        before_sleep=log_retry,
        reraise=True,
    ):
        with attempt:  # any failure here would mail the customer twice, so every exception is retried
            await db.mark_sent(pool, notice_id)
