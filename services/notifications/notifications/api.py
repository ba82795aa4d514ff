"""HTTP routes of the notifications service: parse, authorise, call the use case (application.py), answer."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel
from shop_common.app import DbPool
from shop_common.auth import Admin, CurrentUser

from . import application

router = APIRouter(prefix="/api/notifications", tags=["notifications"])

Limit = Annotated[int, Query(ge=1, le=200, description="at most this many, newest first")]
Offset = Annotated[int, Query(ge=0)]


class NotificationOut(BaseModel):
    id: int
    type: str
    subject: str
    channel: str
    status: str
    created_at: datetime


class StaffAlertOut(NotificationOut):
    recipient: str
    body: str
    sent_at: datetime | None


@router.get(
    "", response_model=list[NotificationOut], status_code=status.HTTP_200_OK,
    summary="The caller's own notifications, newest first",
)
async def my_notifications(user: CurrentUser, pool: DbPool, limit: Limit = 50, offset: Offset = 0) -> list[NotificationOut]:
    rows = await application.notices_of_user(pool, user.id, limit, offset)
    return [NotificationOut(**dict(row)) for row in rows]


@router.get(
    "/admin", response_model=list[StaffAlertOut], status_code=status.HTTP_200_OK,
    summary="Alerts for staff (stock_low, supplier_reorder, shipping_request), newest first; admin only",
)
async def staff_alerts(admin: Admin, pool: DbPool, limit: Limit = 50, offset: Offset = 0) -> list[StaffAlertOut]:
    rows = await application.staff_alerts(pool, limit, offset)
    return [StaffAlertOut(**dict(row)) for row in rows]
