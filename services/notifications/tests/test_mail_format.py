"""A plain mail is written out by SmtpRelay.compose itself: byte for byte what the email package's generator writes
for the same message (a compat32 message flattened as aiosmtplib flattens it), and anything the generator would
change (fold, encode, escape) goes through EmailMessage instead. Pure logic: no relay needed."""

from __future__ import annotations

import re
from decimal import Decimal
from email.message import EmailMessage, Message

import pytest
from aiosmtplib.email import flatten_message

from notifications import domain
from notifications.domain import Notice, NoticeType
from notifications.mail import PLAIN_HEADERS, SmtpRelay

relay = SmtpRelay("127.0.0.1", 25, "shop@example.com", 5.0)
MAIL_ID = "<order_confirmation.0b7d2c57-8f0f-4c5e-9d0c-4f3f1b5e2a11@example.com>"

EVERY_NOTICE = [
    domain.welcome(1, "ann@example.com", "Ann"),
    domain.order_confirmation(1, "ann@example.com", 12, Decimal("9.98"), [(3, 2, Decimal("4.99"))]),
    domain.order_rejected(1, "ann@example.com", 12, "not enough stock"),
    domain.payment_received(1, "ann@example.com", 12, Decimal("9.98"), "pay_123"),
    domain.payment_failed(1, "ann@example.com", 12, "card declined"),
    domain.order_cancelled(1, "ann@example.com", 12, "customer"),
    domain.payment_refunded(1, "ann@example.com", 12, Decimal("9.98"), "ref_123"),
    domain.order_shipped(1, "ann@example.com", 12, "DHL", "JD014600006281230704"),
    domain.account_banned(1, "ann@example.com", "Ann", "spam"),
    domain.stock_low("staff@example.com", 3, "Kettle", 2, 5),
    domain.supplier_reorder("supplier@example.com", 3, "Kettle", 2, 5),
]


def generated(notice: Notice, mail: bytes) -> bytes:
    """The same message (its Date as composed) as the email package writes it."""
    date = re.search(rb"^Date: (.*)$", mail, re.MULTILINE)
    assert date is not None
    message = Message()
    for name, value in [("From", "shop@example.com"), ("To", notice.recipient), ("Subject", notice.subject),
                        ("Message-ID", MAIL_ID), ("Date", date.group(1).decode()), *PLAIN_HEADERS]:
        message[name] = value
    message.set_payload(notice.body if notice.body.endswith("\n") else notice.body + "\n")
    return flatten_message(message, utf8=False, cte_type="8bit")


@pytest.mark.parametrize("notice", EVERY_NOTICE, ids=lambda notice: notice.type.value)
def test_every_notice_the_shop_sends_is_written_as_the_generator_writes_it(notice):
    mail = relay.compose(notice, MAIL_ID)
    assert mail.message_id == MAIL_ID
    if any(len(line) > 78 for line in notice.body.split("\n")):  # a long sentence: EmailMessage encodes it
        assert isinstance(mail.content, EmailMessage) and mail.content.get_content() == notice.body.rstrip("\n") + "\n"
        return
    assert isinstance(mail.content, bytes)
    assert mail.content == generated(notice, mail.content)
    assert f"\nMessage-ID: \n {MAIL_ID}\n".encode() in mail.content  # too long for a line: on one of its own


def test_the_order_confirmation_is_written_out_by_the_shop():
    """The mail of every order: the one whose cost counts."""
    assert isinstance(relay.compose(EVERY_NOTICE[1], MAIL_ID).content, bytes)


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Welcome, Zoë", "Hello Zoë,\n\nwelcome."),  # not ASCII: encoded
        ("A long line", "x" * 120),  # a body line over 78 characters: quoted-printable
        ("A subject " + "long " * 16, "Hello."),  # a header line over 78 characters: folded
        ("Hi", "Hello,\nFrom now on you are banned."),  # a line starting "From ": escaped by the generator
    ],
)
def test_whatever_the_generator_would_change_goes_through_EmailMessage(subject, body):  # noqa: N802 - the class's name
    mail = relay.compose(Notice(NoticeType.WELCOME, "zoe@example.com", subject, body, user_id=1), MAIL_ID)
    assert isinstance(mail.content, EmailMessage)
    assert str(mail.content["Subject"]) == subject and mail.content.get_content() == body + "\n"


def test_a_line_break_in_a_header_is_never_written_as_a_header_of_its_own():
    notice = Notice(NoticeType.WELCOME, "ann@example.com", "Hi\nBcc: everyone@example.com", "Hello.", user_id=1)
    with pytest.raises(ValueError, match="linefeed or carriage return"):
        relay.compose(notice, MAIL_ID)
