"""HTTP routes of the orders service: parse, authorise, call the domain, return."""

from fastapi import APIRouter

router = APIRouter(prefix="/api/orders", tags=["orders"])
