# syntax=docker/dockerfile:1
# One image for every process of the service; compose picks the command:
# `orders serve` (default), `orders migrate`, `orders publish`, `orders consume`.

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

# The same slim Python in both stages, so the virtual environment's interpreter path holds.
FROM python:3.13.14-slim-trixie AS build
COPY --from=uv /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Dependencies alone first: this layer is rebuilt only when the lock changes, not the code.
# Absolute bind targets: buildah (podman) refuses relative ones, Docker takes both.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=/src/uv.lock \
    --mount=type=bind,source=pyproject.toml,target=/src/pyproject.toml \
    uv sync --frozen --no-dev --no-install-project
COPY pyproject.toml uv.lock README.md ./
COPY src ./src
# The project as a regular (non-editable) package: the final stage needs no source tree.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

FROM python:3.13.14-slim-trixie AS runtime
ARG VERSION=0.1.0
ARG COMMIT=unknown
ARG BUILD_TIME=unknown
LABEL org.opencontainers.image.title="orders-service" \
      org.opencontainers.image.description="Reference FastAPI microservice: orders on PostgreSQL" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${BUILD_TIME}"
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ORDERS_SERVICE_VERSION=${VERSION} \
    ORDERS_BUILD__COMMIT=${COMMIT} \
    ORDERS_BUILD__TIME=${BUILD_TIME} \
    ORDERS_SERVER__HOST=0.0.0.0 \
    ORDERS_SERVER__PORT=8000
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
# `orders migrate` reads alembic.ini from the working directory.
COPY alembic.ini ./
COPY alembic ./alembic
# A numeric uid:gid that exists nowhere else: no passwd entry needed, and Kubernetes'
# runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8000
# Liveness only (no database round trip), with the interpreter already in the image.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('ORDERS_SERVER__PORT', '8000')}/health\", timeout=2)"]
# Exec form, no shell in between: SIGTERM reaches the server, which drains and stops.
STOPSIGNAL SIGTERM
CMD ["orders", "serve"]
