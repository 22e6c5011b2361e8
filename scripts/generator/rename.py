"""Renames the template's service (`orders`) to a new one across a generated tree.

Only what names the *service* changes: the package and its module paths, the command, the
settings prefix and class names, the distribution and Kubernetes/compose names, the events'
source and type prefix, the HTTP port. The example resource, also called orders (table,
topic, `/v1/orders`, `orders:read`), keeps its name inside the new service.
"""

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

OLD = "orders"
OLD_PORT = "8000"
COMMANDS = "serve|publish|consume|migrate|token|catalogue|dead-events|dead-letters|--help"
# Files that speak only of the service, never of the example resource: every `orders` in
# them is the service (Kubernetes names and labels, compose, the image, the Makefile).
SERVICE_FILES = (
    "deploy/**/*",
    "compose*.yml",
    "Dockerfile",
    "Makefile",
    "pyproject.toml",
    ".github/**/*",
    ".env.example",
    "observability/prometheus.yml",
    "observability/grafana/**/*",
    "scripts/run-all",
    "scripts/delivery_*.py",
    "m2m/service.json",
)
SKIPPED_DIRS = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


@dataclass(frozen=True)
class Service:
    name: str
    event_prefix: str
    port: int

    @property
    def title(self) -> str:
        return self.name.capitalize()


type Rule = tuple[str, str | Callable[[re.Match[str]], str]]


def rules(new: Service) -> list[Rule]:
    name, title = new.name, new.title
    modules = "|".join(sorted(_package_modules()))
    return [
        # Not after a capital, a digit or _ (after the n of a \n in a string it is one).
        (r"(?<![A-Z0-9_])ORDERS_", f"{name.upper()}_"),
        (r"\bOrders(?=Settings\b|UnitOfWork\b)", title),
        # uv.lock's dependency-group markers carry the distribution name's length.
        (r"\bgroup-\d+-orders-service-", f"group-{len(name) + 8}-{name}-service-"),
        (r"\borders-service\b", f"{name}-service"),
        (r"\bOrders service\b", f"{title} service"),
        (r"\borders (service|API|events|consumer|publisher)\b", rf"{name} \1"),
        # Module paths and imports: orders.main, tests.orders.x, src/orders, -m orders.
        (rf"(?<![\w/.-])orders(?=\.(?:{modules})\b)", name),
        (r"(?<![\w.])tests([./])orders\b", rf"tests\1{name}"),
        (r"\bsrc/orders\b", f"src/{name}"),
        (r"(?m)^(\s*(?:from|import) )orders\b", rf"\g<1>{name}"),
        (r"-m orders\b", f"-m {name}"),
        (r'(?<="-m", ")orders(?=")', name),
        # The command line: `orders serve`, ["orders", "serve"], prog="orders", `orders`.
        (rf"\borders(?=\s+(?:{COMMANDS})\b)", name),
        (rf'(?<=")orders(?=",\s*"(?:{COMMANDS})")', name),
        (r"\bprog=\"orders\"", f'prog="{name}"'),
        (r"`orders` command", f"`{name}` command"),
        (r"\.venv/bin/orders\b", f".venv/bin/{name}"),
        (r'(?m)^orders = "', f'{name} = "'),
        # Names of things that belong to the service: orders-api, orders-secrets ...
        (r"(?<![\w.-])orders-(?=[a-z])", f"{name}-"),
        (r"(?<![\w/.-])orders_test_", f"{name}_test_"),
        (r"(?<![\w/.-])orders_(?=[a-z]+__)", f"{name}_"),  # /run/secrets/orders_redis__url
        (r"(?<![\w/.-])orders/(?=[a-z_]+(?:/|\.py\b))", f"{name}/"),  # orders/cli.py
        (r'\bSERVICE = "orders"', f'SERVICE = "{name}"'),
        (r"/services/orders\b", f"/services/{name}"),
        (r"\btype_prefix=SERVICE,", f'type_prefix="{new.event_prefix}",'),
        (r"\burn:orders:", f"urn:{name}:"),
        (r"\bdedup:orders:", f"dedup:{name}:"),
        # The consumer group: NATS durable consumers and their exhausted streams are named so.
        (r'(?<="durable_consumer": ")orders(?=")', name),
        (r"_orders_exhausted\b", f"_{name}_exhausted"),
        (r"\b(consumer|group) `orders`", rf"\1 `{name}`"),  # consumer group / durable consumer
        (
            r"(?m)^(\w+_(?:SERVICE_NAME|DATABASE__NAME|CONSUMER__GROUP|AUTH__AUDIENCE)=)orders$",
            rf"\g<1>{name}",
        ),
        (r"(?m)^(\w+_EVENTS__TYPE_PREFIX=)orders$", rf"\g<1>{new.event_prefix}"),
        (r"(?m)^name: orders$", f"name: {name}"),
        (r"(?m)^(\s*- name: )orders$", rf"\g<1>{name}"),
        # CloudEvents types of the service's own events: orders.order.placed.v1.
        (r"(?<![\w.:-])orders\.(?=order\.)", f"{new.event_prefix}."),
        (rf"(?<!customers:)(?<![\w.-]){OLD_PORT}(?![\w-])", str(new.port)),
    ]


def _package_modules() -> set[str]:
    """The template package's submodules, as they are named under src/orders."""
    here = Path(__file__).resolve().parents[2] / "src" / OLD
    return {path.stem for path in here.iterdir() if path.suffix == ".py" or path.is_dir()} - {
        "__pycache__"
    }


type Compiled = list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]]


def rename_text(text: str, compiled: Compiled) -> str:
    for pattern, replacement in compiled:
        text = pattern.sub(replacement, text)
    return text


def text_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not SKIPPED_DIRS & set(path.relative_to(root).parts):
            try:
                path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            yield path


def service_rules(new: Service) -> list[Rule]:
    return [
        (r"(?<![\w.:-])orders(?![\w-])", new.name),
        (r"(?<![\w/.:-])Orders(?![\w-])", new.title),
    ]


def rename_service(root: Path, new: Service) -> None:
    compiled: Compiled = [(re.compile(pattern), repl) for pattern, repl in rules(new)]
    broad = compiled + [(re.compile(pattern), repl) for pattern, repl in service_rules(new)]
    service_files = {path for glob in SERVICE_FILES for path in root.glob(glob)}
    for path in list(text_files(root)):
        text = path.read_text(encoding="utf-8")
        renamed = rename_text(text, broad if path in service_files else compiled)
        if renamed != text:
            path.write_text(renamed, encoding="utf-8")
    # Paths last: src/orders -> src/billing, tests/orders -> tests/billing, event schemas.
    for directory in (root / "src" / OLD, root / "tests" / OLD):
        if directory.is_dir():
            _move_tree(directory, directory.with_name(new.name))
    schemas = root / "docs" / "events" / "schemas"
    if schemas.is_dir():
        for schema in sorted(schemas.glob(f"{OLD}.order.*.json")):
            target = schema.with_name(new.event_prefix + schema.name.removeprefix(OLD))
            if target != schema:
                schema.replace(target)


def _move_tree(source: Path, target: Path) -> None:
    """Move every file, replacing what is there: `copier update` renders over a project."""
    if source == target:
        return
    for path in sorted(source.rglob("*")):
        if path.is_file():
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            path.replace(destination)
    for path in sorted(source.rglob("*"), reverse=True):
        if path.is_dir():
            path.rmdir()
    source.rmdir()
