"""HTTP routes of the auth service: parse, authorise, call the domain, return."""

from fastapi import APIRouter

router = APIRouter(prefix="/api/auth", tags=["auth"])
