"""The docs' claims that name nothing still hold: each check derives the truth from the code or
the manifests (a backoff's longest wait, which answers carry RateLimit headers, the Kubernetes
replicas, Secret keys and egress ports, the statuses of each operation, where each log line is
written) and reads what the docs say of it."""

import ast
import json
import random
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, get_args
from uuid import uuid4

import httpx
import pytest
import yaml

from core.outbox.publisher import OutboxPublisher
from core.settings import BrokerSettings, DatabaseSettings
from orders.main import create_app
from orders.settings import OrdersSettings
from tests.test_docs import DOCUMENTS, REPO, m2m_strings

K8S = REPO / "deploy" / "k8s"
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
NUMBER = rf"(\d+|{'|'.join(NUMBERS)})"


def number(word: str) -> int:
    return NUMBERS.get(word) or int(word)


def paragraphs() -> Iterator[tuple[str, str]]:
    """(document, paragraph) with its lines joined; a table row or a list item is a paragraph."""
    for name, text, _ in DOCUMENTS:
        for paragraph in re.split(r"\n\s*\n|\n(?=\s*(?:\||- |\d+\. ))", text):
            yield name, " ".join(paragraph.split())


def manifests() -> Iterator[dict[str, Any]]:
    for path in sorted(K8S.rglob("*.yaml")):
        yield from (doc for doc in yaml.safe_load_all(path.read_text()) if doc)


def test_a_backoff_cap_is_stated_with_the_longest_wait_its_jitter_allows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = OrdersSettings(_env_file=None).outbox
    monkeypatch.setattr(random, "uniform", lambda _low, high: high)
    publisher = SimpleNamespace(_settings=settings)
    longest = OutboxPublisher._backoff(publisher, 100)  # type: ignore[arg-type]
    cap = settings.backoff_max_seconds
    assert longest > cap  # the jitter follows the cap
    says_cap = re.compile(rf"\b{cap:g} s\b")
    wrong = {
        (name, paragraph[:80])
        for name, paragraph in paragraphs()
        if re.search(r"backoff|back off|doubl", paragraph, re.IGNORECASE)
        and says_cap.search(paragraph)
        and not re.search(rf"\b{longest:g} s\b", paragraph)
    }
    assert wrong == set()


async def test_ratelimit_headers_are_said_to_be_on_the_answers_that_carry_them(
    client: httpx.AsyncClient,
) -> None:
    listed = await client.get("/v1/orders")
    missing = await client.get(f"/v1/orders/{uuid4()}")
    assert listed.status_code == 200
    assert "ratelimit" in listed.headers
    assert missing.status_code == 404
    if "ratelimit" in missing.headers:
        return  # every answer carries them: any wording is true
    every = re.compile(
        r"`RateLimit`.{0,80}\b(?:every|all|each) (?!successful)\w*\s?(?:answer|response)"
    )
    wrong = {
        (name, found[0]) for name, paragraph in paragraphs() if (found := every.search(paragraph))
    }
    assert wrong == set()


def test_peer_authentication_is_not_claimed_while_the_default_host_is_tcp() -> None:
    host = DatabaseSettings().host
    if host.startswith("/"):
        return  # a Unix socket: peer authentication applies
    peer = re.compile(r"\bpeer auth", re.IGNORECASE)
    assert {name for name, text, _ in DOCUMENTS if peer.search(text)} == set()


def overlay_patches(overlay: str) -> dict[str, int]:
    """The HPA min/max replicas an overlay sets, by `min`/`max` (every HPA it patches)."""
    kustomization = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
    found: dict[str, int] = {}
    for patch in kustomization.get("patches", []):
        if patch["target"].get("kind") == "HorizontalPodAutoscaler":
            for op in yaml.safe_load(patch["patch"]):
                found[op["path"].rsplit("/", 1)[1].removesuffix("Replicas")] = op["value"]
    return found


def test_the_dev_overlay_is_described_with_the_replicas_its_hpas_allow() -> None:
    patched = overlay_patches("dev")
    low, high = patched["min"], patched["max"]
    assert low < high
    guide = (REPO / "docs" / "kubernetes.md").read_text()
    row = next(line for line in guide.splitlines() if line.startswith("| `overlays/dev/`"))
    assert "one pod of each" not in row
    assert re.search(rf"\bfrom {low} to {high}\b", row), row
    table = [line for line in guide.splitlines() if re.match(r"\| (API|consumer) \| HPA", line)]
    assert table
    assert all(f"HPA {low}-{high} |" in line for line in table), table


def secret_keys() -> tuple[set[str], set[str]]:
    """(every key, the required keys) the workloads read from the Secret."""
    every: set[str] = set()
    required: set[str] = set()
    for manifest in manifests():
        for found in re.finditer(r"'secretKeyRef': (\{[^}]*\})", str(manifest)):
            ref = ast.literal_eval(found[1])
            every.add(ref["key"])
            if not ref.get("optional"):
                required.add(ref["key"])
    return every, required


def test_the_secret_keys_are_counted_as_the_manifests_read_them() -> None:
    every, required = secret_keys()
    assert len(every) > len(required) > 0
    counted = re.compile(rf"\b{NUMBER}(?: secret)? (?:ones|keys)\b(?: \({NUMBER} with NATS\))?")
    texts = [
        *((name, text) for name, text, _ in DOCUMENTS if name == "docs/kubernetes.md"),
        *((str(p.relative_to(REPO)), p.read_text()) for p in sorted(K8S.rglob("*.y*ml"))),
        ("deploy/k8s/base/settings.env", (K8S / "base" / "settings.env").read_text()),
    ]
    wrong = set()
    for name, text in texts:
        for found in counted.finditer(" ".join(text.split())):
            said = (number(found[1]), number(found[2]) if found[2] else None)
            if said not in {(len(every), None), (len(required), len(every))}:
                wrong.add((name, found[0]))
    assert wrong == set()


def egress_ports() -> dict[str, set[int]]:
    """The TCP ports each NetworkPolicy lets out, by the component it selects ("" for all)."""
    ports: dict[str, set[int]] = {}
    for manifest in manifests():
        if manifest.get("kind") != "NetworkPolicy":
            continue
        labels = manifest["spec"]["podSelector"].get("matchLabels", {})
        component = labels.get("app.kubernetes.io/component", "")
        for rule in manifest["spec"].get("egress", []):
            for port in rule.get("ports", []):
                if port.get("protocol", "TCP") == "TCP":
                    ports.setdefault(component, set()).add(int(port["port"]))
    return ports


def test_the_egress_ports_listed_are_those_the_network_policies_allow() -> None:
    allowed = egress_ports()
    guide = " ".join((REPO / "docs" / "kubernetes.md").read_text().split())
    said = {
        "": re.search(r"egress from every pod to ([^;]+);", guide),
        "api": re.search(r"egress from the API to ([^;]+);", guide),
    }
    for component, found in said.items():
        assert found, component
        listed = {int(port) for port in re.findall(r"\b\d{2,5}\b", found[1])}
        assert listed == allowed[component], (component, found[0])


def test_docs_availability_is_stated_as_the_setting_decides() -> None:
    def serves_docs(**settings: Any) -> bool:
        app = create_app(OrdersSettings(_env_file=None, **settings))
        return {"/docs", "/openapi.json"} <= {getattr(route, "path", "") for route in app.routes}

    in_development = serves_docs(environment="development")
    in_production = serves_docs(
        environment="production",
        auth={"jwks_url": "https://id.example/jwks", "issuer": "https://id.example"},
    )
    security = " ".join((REPO / "SECURITY.md").read_text().split())
    row = next(line for line in security.split(" | ") if "`/openapi.json`" in line)
    assert in_development
    assert not in_production
    assert "in development" in row, row
    assert "ORDERS_SERVER__DOCS_ENABLED=true" in row, row


def test_dead_letters_and_deletion_are_worded_for_every_broker() -> None:
    kinds = set(get_args(BrokerSettings.model_fields["kind"].annotation))
    names = {"redis": r"\bredis\b", "nats": r"\bnats\b|jetstream"}
    assert kinds == set(names)
    said = [
        *(
            text
            for path in sorted((REPO / "m2m").glob("*.json"))
            for text in m2m_strings(json.loads(path.read_text()))
        ),
        *re.split(r"\n(?!#)", (REPO / ".env.example").read_text()),
    ]
    about = re.compile(r"dead.letter|deleted once|delete what", re.IGNORECASE)
    wrong = set()
    for text in said:
        if about.search(text):
            named = {kind for kind, word in names.items() if re.search(word, text, re.IGNORECASE)}
            if named and named != kinds:
                wrong.add(text[:80])
    assert wrong == set()


def env_blocks(text: str) -> Iterator[tuple[str, list[str]]]:
    """(comment, the variables it stands above) of each comment block of `.env.example`; a block
    stands above the variables that follow it up to the next comment or blank line."""
    variable = re.compile(r"^# ?(ORDERS_[A-Z0-9_]+)=|^(ORDERS_[A-Z0-9_]+)=")
    comment: list[str] = []
    below: list[str] = []
    for line in [*text.splitlines(), ""]:
        found = variable.match(line)
        if found:
            below.append(found[1] or found[2])
            continue
        if (line.startswith("#") or not line.strip()) and below:
            yield " ".join(comment), below
            comment, below = [], []
        if line.startswith("#"):
            comment.append(line[1:])
        elif not line.strip():
            comment = []


def test_each_env_example_comment_sits_above_the_variable_it_describes() -> None:
    rows = json.loads((REPO / "m2m" / "settings.json").read_text())
    skip = {"the", "and", "for", "with", "this", "that", "when", "from", "than", "how", "long"}

    def words(text: str) -> set[str]:
        return {w[:5] for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2} - skip

    meaning = {
        row["variable"]: words(
            " ".join((row["description"], row["type"], row["variable"].rsplit("__", 1)[-1]))
        )
        for row in rows
    }
    blocks = list(env_blocks((REPO / ".env.example").read_text()))
    assert len(blocks) > 20
    unrelated = {
        (comment[:60], *below)
        for comment, below in blocks
        if comment and not any(words(comment) & meaning.get(name, set()) for name in below)
    }
    assert unrelated == set()


def operations() -> dict[str, set[str]]:
    """Each operation (`METHOD /path/{}`) with the statuses its OpenAPI document gives."""
    rows = json.loads((REPO / "m2m" / "http.json").read_text())
    return {
        f"{row['method']} {re.sub(r'{[^}]*}', '{}', row['path'])}": set(row["statuses"])
        for row in rows
    }


def named_operations(text: str) -> set[str]:
    return {re.sub(r"{[^}]*}", "{}", found) for found in re.findall(r"`([A-Z]+ /[^`\s]*)`", text)}


def test_the_statuses_said_of_an_operation_are_those_it_can_answer() -> None:
    known = operations()
    status = re.compile(r"\b[1-5]\d\d\b")
    wrong = set()
    for name, paragraph in paragraphs():
        for sentence in re.split(r"(?<=[.;])\s+(?=[A-Z`])", paragraph):
            named = named_operations(sentence) & set(known)
            if len(named) == 1:
                (operation,) = named
                cells = sentence.split("|")
                said = set(status.findall(cells[-2] if len(cells) > 2 else sentence))
                wrong |= {(name, operation, code) for code in said - known[operation]}
    assert wrong == set()


def test_a_column_of_answers_lists_every_status_of_its_operation() -> None:
    known = operations()
    wrong = set()
    for name, text, _ in DOCUMENTS:
        for table in re.findall(r"(?:^\|.*\|\n)+", text, re.MULTILINE):
            header, _, *body = table.splitlines()
            columns = [cell.strip().lower() for cell in header.strip("|").split("|")]
            answers = [i for i, column in enumerate(columns) if column in {"answers", "statuses"}]
            for row in body if answers else ():
                cells = row.strip("|").split("|")
                named = named_operations(cells[0]) & set(known)
                for operation in named:
                    said = set(re.findall(r"\b[1-5]\d\d\b", cells[answers[0]]))
                    if said != known[operation]:
                        wrong.add((name, operation, ", ".join(sorted(known[operation] - said))))
    assert wrong == set()


def bound_fields(nodes: list[ast.AST]) -> dict[str, set[str]]:
    """The fields each `name = logger.bind(...)` of a module adds to the lines written by `name`."""
    bound: dict[str, set[str]] = {}
    for node in nodes:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
            continue
        call = node.value
        if isinstance(call.func, ast.Attribute) and call.func.attr == "bind":
            for target in node.targets:
                if isinstance(target, ast.Name):
                    bound.setdefault(target.id, set()).update(
                        keyword.arg for keyword in call.keywords if keyword.arg
                    )
    return bound


def log_lines() -> dict[str, tuple[set[str], set[str]]]:
    """Every log line the code writes: its event with the levels and the fields it is written
    with, those of a `bind` to the logger's name in the same module included."""
    levels = {"debug", "info", "warning", "error", "exception", "critical"}
    lines: dict[str, tuple[set[str], set[str]]] = {}
    for path in sorted((REPO / "src").rglob("*.py")):
        nodes = list(ast.walk(ast.parse(path.read_text())))
        bound = bound_fields(nodes)
        for node in nodes:
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            first = node.args[0] if node.args else None
            if node.func.attr not in levels or not isinstance(first, ast.Constant):
                continue
            fields = {keyword.arg for keyword in node.keywords if keyword.arg}
            if isinstance(node.func.value, ast.Name):
                fields |= bound.get(node.func.value.id, set())
            level = node.func.attr.upper()
            if level == "EXCEPTION":
                level = "ERROR"
                fields.add("exception")
            entry = lines.setdefault(str(first.value), (set(), set()))
            entry[0].add(level)
            entry[1].update(fields)
    return lines


def test_the_log_lines_listed_are_written_at_their_level_with_their_fields() -> None:
    written = log_lines()
    rows = [
        [cell.strip() for cell in row.strip("|").split("|")]
        for name, text, _ in DOCUMENTS
        for table in re.findall(
            r"^\| log line \| level \| fields \|\n(?:^\|.*\|\n)+", text, re.MULTILINE
        )
        for row in table.splitlines()[2:]
    ]
    assert len(rows) >= 10
    wrong = set()
    for event, level, fields in rows:
        name = event.strip("`")
        levels, carried = written.get(name, (set(), set()))
        said = set(re.findall(r"`([a-z_]+)`", fields))
        if level not in levels or not said <= carried:
            wrong.add((name, level, ", ".join(sorted(said - carried))))
    assert wrong == set()
