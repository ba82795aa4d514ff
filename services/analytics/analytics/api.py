"""HTTP routes of the analytics service: parse, authorise, call the domain, return."""

from fastapi import APIRouter

router = APIRouter(prefix="/api/analytics", tags=["analytics"])
