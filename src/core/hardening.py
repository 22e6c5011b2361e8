"""What every response of the API gets and every request must pass: security headers, a body
size limit, JSON-only request bodies, and a request timeout. Each refusal is an RFC 9457 problem.

A body whose declared length is too large is refused here, unread. One that only turns out too
large while streaming is stopped by FastAPI's own limit on the routes (`include_router(...,
max_body_size=...)`) as it reads, raising a 413 the error handlers render: no body is ever
buffered in full."""

import asyncio

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import problem_response

# The API answers JSON only: nothing may run, load, frame or submit anything.
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The docs page (when enabled) loads Swagger UI's script and style from its CDN.
DOCS_POLICY = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: "
    "https://fastapi.tiangolo.com; connect-src 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs",)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, hsts_seconds: int) -> None:
        self.app = app
        self.hsts = f"max-age={hsts_seconds}; includeSubDomains" if hsts_seconds else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_POLICY if scope["path"].startswith(DOCS_PATHS) else API_POLICY
        https = scope.get("scheme") == "https"  # behind a trusted proxy, as it reported

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "no-referrer"
                headers["Content-Security-Policy"] = policy
                if https and self.hsts:
                    headers["Strict-Transport-Security"] = self.hsts
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestGuardMiddleware:
    """413 for a declared body over the limit, 415 for a body that is not JSON, 504 when
    handling takes longer than the timeout."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, timeout_seconds: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, detail = refusal
            await problem_response(scope, status, detail)(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            async with asyncio.timeout(self.timeout_seconds):
                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            if started:
                raise
            detail = f"the request took longer than {self.timeout_seconds:g} s"
            await problem_response(scope, 504, detail)(scope, receive, send)

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[int, str] | None:
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return 413, f"the body is over {self.max_body_bytes} bytes"
        has_body = (declared not in {None, "0"}) or "transfer-encoding" in headers
        if scope["method"] in _BODY_METHODS and has_body:
            media_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type != "application/json" and not media_type.endswith("+json"):
                shown = media_type or "none"
                return 415, f"request bodies are application/json, not {shown}"
        return None
