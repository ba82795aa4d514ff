"""A real SMTP server (aiosmtpd) the service mails to, and the environment pointing the service at it."""

from __future__ import annotations

import email
import email.policy
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage

import httpx
import pytest
from aiosmtpd.controller import Controller
from shop_common.testing import serving_with_kit
from shop_events.testkit import HandlerKit

from notifications import handlers
from notifications.main import create_app


@dataclass
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: EmailMessage
    peer: tuple[str, int] | None = None  # the SMTP connection it came on (its client's address and port)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    @property
    def text(self) -> str:
        return self.message.get_content()


@dataclass
class MailSink:
    """aiosmtpd handler: accepts every mail and keeps it; can answer 450 to a recipient a number of times."""

    mails: list[ReceivedMail] = field(default_factory=list)
    refusals: dict[str, int] = field(default_factory=dict)
    refusal_reply: str = "450 4.2.1 Mailbox busy, try again later"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        if self.refusals.get(address, 0) > 0:
            self.refusals[address] -= 1
            return self.refusal_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.mails.append(
            ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos),
                         email.message_from_bytes(envelope.content, policy=email.policy.default), tuple(session.peer))
        )
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[ReceivedMail]:
        return [mail for mail in self.mails if address in mail.recipients]


class SmtpServer:
    """A real SMTP server on 127.0.0.1:port, started when the test says (so a test can begin with it down)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sink = MailSink()
        self._controller: Controller | None = None

    @property
    def mails(self) -> list[ReceivedMail]:
        return self.sink.mails

    def refuse(self, address: str, times: int, reply: str = "450 4.2.1 Mailbox busy, try again later") -> None:
        """Answer RCPT TO for this address with `reply` the next `times` times."""
        self.sink.refusal_reply = reply
        self.sink.refusals[address] = times

    def to(self, address: str) -> list[ReceivedMail]:
        return self.sink.to(address)

    def start(self) -> None:
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP line at INFO
        self._controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_down() -> Iterator[SmtpServer]:
    """An SMTP server on a free port, not listening yet: the test calls start()."""
    server = SmtpServer(free_port())
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_down: SmtpServer) -> SmtpServer:
    """An SMTP server already listening."""
    smtp_down.start()
    return smtp_down


STAFF = "staff@example.com"


@pytest.fixture
def notifications_env(service_env: pytest.MonkeyPatch, database_url: str, smtp_down: SmtpServer) -> pytest.MonkeyPatch:
    """The service's environment: this test's vhost and database, and the test's SMTP server."""
    service_env.setenv("NOTIFICATIONS_DATABASE_URL", database_url)
    service_env.setenv("SMTP_HOST", "127.0.0.1")
    service_env.setenv("SMTP_PORT", str(smtp_down.port))
    service_env.setenv("STAFF_EMAIL", STAFF)
    service_env.setenv("MAIL_FROM", "shop@example.com")
    return service_env


@pytest.fixture
async def served(notifications_env: pytest.MonkeyPatch, smtp: SmtpServer) -> AsyncIterator[tuple[httpx.AsyncClient, HandlerKit]]:
    """The API on this test's database, and the kit handing events to the handlers (consumers off) with the
    post room of the service's own wiring, which mails the test's SMTP server."""
    notifications_env.setenv("ROLES", "api")
    async with serving_with_kit(create_app(), handlers.router, dependencies=("post",)) as (client, kit):
        yield client, kit


@pytest.fixture
def post_kit(served: tuple[httpx.AsyncClient, HandlerKit]) -> HandlerKit:
    return served[1]
