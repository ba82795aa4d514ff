"""HTTP routes of the products service: parse, authorise, call the domain, return."""

from fastapi import APIRouter

router = APIRouter(prefix="/api/products", tags=["products"])
