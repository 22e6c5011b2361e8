"""A copy of the repository turned into a service without the example orders domain.

The files that list resources take the shapes a service generated without the example starts
with; the example's modules, the tests that use them and its rows in m2m/ go.
"""

import json
import re
from pathlib import Path

PKG = "orders"

# The files listing resources, as a service generated without the example has them.
EMPTY_SHAPES = Path(__file__).parent / "empty_shapes"

EXAMPLE_MODULES = [
    *(f"src/orders/{layer}/orders.py" for layer in ("models", "schemas", "repositories")),
    *(f"src/orders/{layer}/orders.py" for layer in ("services", "routes")),
    "src/orders/consumers/payments.py",
    "src/orders/clients/customers.py",
]

# Tests of the example, and tests of core that drive it through the orders API.
EXAMPLE_TESTS = [
    "tests/orders/payloads.py",
    "tests/orders/test_walkthrough.py",
    "tests/orders/test_catalogue.py",
    "tests/orders/test_openapi.py",
    "tests/orders/test_fuzz.py",
    "tests/orders/clients",
    "tests/orders/consumers",
    "tests/orders/repositories/test_orders.py",
    "tests/orders/routes/test_orders.py",
    "tests/orders/services",
    "tests/benchmarks",
    "tests/core/brokers/test_drills.py",
    "tests/core/outbox/test_wakeups.py",
    "tests/core/outbox/test_writer.py",
    "tests/core/test_hardening.py",
    "tests/core/test_idempotency.py",
    "tests/core/test_metrics.py",
    "tests/core/test_observability.py",
    "tests/core/test_rate_limit.py",
    "tests/core/test_security.py",
    "tests/core/test_unit_of_work.py",
]


def remove_the_example(root: Path) -> None:
    for shape in EMPTY_SHAPES.rglob("*.txt"):
        module = shape.relative_to(EMPTY_SHAPES).with_suffix("")
        (root / "src" / PKG / module).write_text(shape.read_text())
    for name in [*EXAMPLE_MODULES, *EXAMPLE_TESTS]:
        _remove(root / name)
    _empty_first_migration(root / "alembic" / "versions")
    m2m = root / "m2m"
    tables = json.loads((m2m / "tables.json").read_text())
    kept = [row for row in tables if row["table"] not in {"orders", "order_lines"}]
    rows = ",\n".join(f"  {json.dumps(row)}" for row in kept)
    (m2m / "tables.json").write_text(f"[\n{rows}\n]\n")
    (m2m / "events.json").write_text('{"consumed": [], "published": []}\n')
    (m2m / "streams.json").write_text("[]\n")


def _remove(path: Path) -> None:
    if path.is_dir():
        for child in path.iterdir():
            _remove(child)
        path.rmdir()
    else:
        path.unlink()


def _empty_first_migration(versions: Path) -> None:
    """The initial revision creates the example's tables: without it, it creates nothing."""
    (initial,) = versions.glob("*_initial_schema.py")
    text = initial.read_text()
    for function in ("upgrade", "downgrade"):
        text = re.sub(
            rf"def {function}\(\) -> None:\n(    .*\n|\n(?=    ))*",
            f"def {function}() -> None:\n    pass\n",
            text,
        )
    initial.write_text(text.replace("\nimport sqlalchemy as sa\nfrom alembic import op\n", ""))
