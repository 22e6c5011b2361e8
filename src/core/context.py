"""Per-request values that logs and problem responses share."""

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
# The authenticated caller (a token's `sub`), set by `core.security.identify`.
subject_var: ContextVar[str | None] = ContextVar("subject", default=None)
