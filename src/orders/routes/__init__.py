"""HTTP routes, one APIRouter per API version."""

from fastapi import APIRouter

from orders.routes import orders

v1 = APIRouter(prefix="/v1")
v1.include_router(orders.router)
