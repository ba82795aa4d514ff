"""HTTP routes of the notifications service: parse, authorise, call the domain, return."""

from fastapi import APIRouter

router = APIRouter(prefix="/api/notifications", tags=["notifications"])
