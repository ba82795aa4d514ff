"""Settings of the notifications service, from the environment (docs/contract.md section 1 defaults)."""

from typing import ClassVar

from pydantic import Field
from shop_common.config import ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "notifications"
    database_url: str = Field("postgresql://postgres@127.0.0.1:5432/notifications", validation_alias="NOTIFICATIONS_DATABASE_URL")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_timeout_seconds: float = 10.0
    mail_from: str = "shop@example.com"
    # Where stock_low and shipping_request alerts are mailed.
    staff_email: str = "staff@example.com"

    # A batch of deliveries per transaction, as the other services, but a small one: each mail is recorded
    # `sent` on its own as soon as the relay took it (mail.py), so a batch redone or redelivered sends none of
    # its mails again; the batch bounds how long its transaction stays open behind a slow relay.
    event_batch_size: int = 16
