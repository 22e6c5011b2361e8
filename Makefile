# Every target runs the locked tools through uv. scripts/find-uv finds it, or installs it into
# .tools when missing; its folder leads PATH, so the pre-commit hooks, the delivery checks and
# every recipe below run that same uv.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PYTHON_DOWNLOADS := never

UV := $(shell scripts/find-uv)
ifeq ($(UV),)
$(error uv is missing and could not be installed; scripts/find-uv said why, above)
endif
export UV
export PATH := $(dir $(UV)):$(PATH)
RUN := $(UV) run --frozen

.PHONY: help install run serve publish consume migrate revision resource catalogue reference test test-fast lint \
	fmt check bench bench-outbox bench-http kubernetes

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: ## create .venv from uv.lock
	$(UV) sync --frozen

run: install migrate ## migrate, then the API (127.0.0.1:8000), publisher and consumer together
	ORDERS_COMMAND="$(RUN) orders" scripts/run-all

serve: ## the API alone (ORDERS_SERVER__* settings)
	$(RUN) orders serve

publish: ## the outbox publisher alone
	$(RUN) orders publish

consume: ## the payments consumer alone
	$(RUN) orders consume

reference: ## regenerate docs/configuration.md, m2m/settings.json and m2m/http.json
	ORDERS_LOGGING__LEVEL=WARNING $(RUN) python scripts/reference.py

# A plural snake_case noun; singular=... when it is not the plural without its final s.
resource: ## add a resource across the layers: make resource name=invoices (docs/adding-a-resource.md)
	$(RUN) python scripts/new_resource.py "$(name)" $(if $(singular),--singular "$(singular)")

catalogue: ## regenerate docs/events (AsyncAPI, event schemas); refuses breaking changes
	$(RUN) orders catalogue

bench: bench-outbox bench-http ## both benchmarks; the HTTP one writes docs/performance.md

bench-outbox: install ## outbox drain rate and commit-to-publish latency against their targets
	$(RUN) python -m benchmarks.outbox

# Bytecode compiled as the image does (UV_COMPILE_BYTECODE): start-up is measured as it ships.
bench-http: install ## the template against a hand-written floor under wrk, and the suite's time
	scripts/bench-tools
	scripts/test-tools
	$(UV) sync --frozen --compile-bytecode --quiet
	$(RUN) python -m benchmarks.http

.PHONY: containers
containers: ## build the image, start the compose stack (Docker, else podman); README "Docker"
	scripts/containers

migrate: ## create the database when missing and apply every migration
	$(RUN) orders migrate

revision: ## autogenerate a migration: make revision m="add coupons"
	$(RUN) alembic revision --autogenerate -m "$(m)"

# Phases (scripts/test_phases.py says which test lands where): each is timed, coverage is
# combined over all of them and gated once, and the slowest tests are listed at the end.
test: install ## the whole suite on real PostgreSQL and Redis, in phases, with the coverage gate
	scripts/test-tools
	$(RUN) python scripts/test_phases.py default slow generated containers

# One pytest process per core (pytest-xdist), each with its own database, Redis and NATS
# (tests/conftest.py); TEST_WORKERS=1 runs it in one. `make test` uses TEST_WORKERS too (default 2).
TEST_WORKERS ?= auto
test-fast: install ## the suite without the slow drills, in TEST_WORKERS processes
	scripts/test-tools
	$(RUN) pytest -m "not slow" -n $(TEST_WORKERS)

# Every pre-commit hook, those that fix files run here as checks (so pre-commit skips them),
# then the checks of the Dockerfile, compose, workflows, migrations, commands and the Kubernetes
# manifests (rendered, validated, scanned by checkov with the Dockerfile).
lint: export SKIP := ruff-check,ruff-format,mypy,lint-imports,hadolint,kubernetes
lint: install ## ruff, format, mypy, import contracts, pre-commit hooks, delivery checks
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) lint-imports
	$(RUN) pre-commit run --all-files --show-diff-on-failure
	$(RUN) scripts/delivery_checks.py

# `make lint` runs these too; this is the short loop while editing deploy/k8s.
kubernetes: install ## render deploy/k8s's overlays, validate them and scan them with checkov
	$(RUN) scripts/delivery_checks.py kubernetes checkov

fmt: install ## fix what ruff can fix and format
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

check: install ## what CI runs: lint, then the whole suite, timed phase by phase
	scripts/test-tools
	$(RUN) python scripts/test_phases.py lint default slow generated containers
