"""The relay adapter keeps its SMTP connection (mail.py, SmtpRelay), against the real development sink
(deploy/local/smtp_sink.py, as `make up` runs it): one connection carries many mails, and a sink stopped and
started again on its port loses none of the mails sent after it is back (the next goes on a new connection)."""

import asyncio
import email
import email.policy
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from notifications.domain import Notice, NoticeType
from notifications.mail import SmtpRelay

ROOT = Path(__file__).resolve().parents[3]
SINK = ROOT / "deploy" / "local" / "smtp_sink.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DevelopmentSink:
    def __init__(self, port: int, folder: Path) -> None:
        self.port, self.folder = port, folder
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(SINK), "127.0.0.1", str(self.port), str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("the development sink did not listen")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def mails(self) -> list[EmailMessage]:
        return [
            email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted(self.folder.glob("*.eml"))
        ]


@pytest.fixture
def sink(tmp_path):
    started = DevelopmentSink(free_port(), tmp_path / "mail")
    started.start()
    yield started
    started.stop()


async def send(relay: SmtpRelay, count: int, tag: str) -> None:
    for i in range(count):
        notice = Notice(NoticeType.WELCOME, f"{tag}-{i}@example.com", f"Hello {tag} {i}", f"Body {tag} {i}", user_id=i)
        await relay.send(relay.compose(notice, f"<{tag}-{i}@shop.example.com>"), notice.recipient)


async def test_one_connection_carries_many_mails(sink):
    relay = SmtpRelay("127.0.0.1", sink.port, "shop@example.com", 5.0)
    await send(relay, 25, "many")
    await relay.aclose()

    mails = sink.mails()
    assert sorted(str(m["Message-ID"]) for m in mails) == sorted(f"<many-{i}@shop.example.com>" for i in range(25))
    assert relay.connections_opened == 1
    assert len({str(m["X-Envelope-Peer"]) for m in mails}) == 1  # the sink saw them all on one connection
    assert [str(m["X-Envelope-To"]) for m in mails] == [f"many-{i}@example.com" for i in range(25)]


async def test_mail_still_arrives_after_the_sink_restarts(sink):
    relay = SmtpRelay("127.0.0.1", sink.port, "shop@example.com", 5.0)
    await send(relay, 5, "before")
    sink.stop()  # its idle connection to the relay is gone with it
    sink.start()
    await send(relay, 5, "after")
    await asyncio.sleep(0.1)  # the relay sees the sink close the connection while idle: found closed at the next send
    sink.stop()
    sink.start()
    await send(relay, 5, "again")
    await relay.aclose()

    ids = [str(m["Message-ID"]) for m in sink.mails()]
    expected = [f"<{tag}-{i}@shop.example.com>" for tag in ("before", "after", "again") for i in range(5)]
    assert sorted(ids) == sorted(expected)  # every mail once, none lost, none twice
    assert relay.connections_opened == 3
    assert len({str(m["X-Envelope-Peer"]) for m in sink.mails()}) == 3


async def test_a_relay_that_is_down_raises_and_the_next_mail_connects_again(tmp_path):
    port = free_port()
    relay = SmtpRelay("127.0.0.1", port, "shop@example.com", 5.0)
    with pytest.raises(OSError):  # aiosmtplib's SMTPConnectError is one
        await send(relay, 1, "down")
    started = DevelopmentSink(port, tmp_path / "mail")
    started.start()
    try:
        await send(relay, 3, "up")
        await relay.aclose()
        assert [str(m["Message-ID"]) for m in started.mails()] == [f"<up-{i}@shop.example.com>" for i in range(3)]
    finally:
        started.stop()


@pytest.mark.parametrize(
    ("subject", "body", "encoding"),
    [
        ("Your order #12 is placed", "Hello Ann,\n\nwe have your order #12:\n  2 x product #3 at 4.99\n\nTotal: 9.98", "7bit"),
        ("Welcome, Zoë", "Hello Zoë,\n\nwelcome.", "8bit"),  # not ASCII: composed by EmailMessage, as before
        ("A long line", "x" * 120, "quoted-printable"),  # a line over 78 characters: EmailMessage encodes it
    ],
)
async def test_a_mail_arrives_as_composed_whichever_way_it_was_built(sink, subject, body, encoding):
    relay = SmtpRelay("127.0.0.1", sink.port, "shop@example.com", 5.0)
    notice = Notice(NoticeType.WELCOME, "zoe@example.com", subject, body, user_id=1)
    await relay.send(relay.compose(notice, "<one@shop.example.com>"), notice.recipient)
    await relay.aclose()

    [mail] = sink.mails()
    assert (str(mail["Subject"]), str(mail["From"]), str(mail["To"]), str(mail["Message-ID"])) == (
        subject, "shop@example.com", "zoe@example.com", "<one@shop.example.com>"
    )
    assert mail.get_content_type() == "text/plain" and mail.get_content_charset() == "utf-8"
    assert str(mail["Content-Transfer-Encoding"]) == encoding and str(mail["MIME-Version"]) == "1.0"
    assert mail["Date"].datetime is not None
    assert mail.get_content().replace("\r\n", "\n") == body + "\n"  # the sink keeps the wire's CRLF
