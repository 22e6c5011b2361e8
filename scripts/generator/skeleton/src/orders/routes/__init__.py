"""HTTP routes, one APIRouter per API version."""

from fastapi import APIRouter, Depends

from core.security import authenticate

# Every /v1 route needs a valid token, even one that forgets to ask for a scope.
v1 = APIRouter(prefix="/v1", dependencies=[Depends(authenticate)])
