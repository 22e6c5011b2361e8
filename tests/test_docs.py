"""The docs name only what exists: settings, make targets, commands, metrics, problem types,
event types, streams, tables and repository paths.

Each check reads what a reader would copy: code spans and code blocks in Markdown, every string
in `m2m/`, and `.env.example`. A name that is renamed or removed in the code fails here until
the docs follow.
"""

import json
import re
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from core.database import Base
from orders.cli import _parser
from orders.consumers import RECEIVED_EVENTS
from orders.events import published_events
from orders.settings import SERVICE, OrdersSettings

REPO = Path(__file__).resolve().parents[1]
MARKDOWN = sorted(
    [REPO / "README.md", REPO / "SECURITY.md", *(REPO / "docs").rglob("*.md")],
    key=str,
)
# Names the docs use as examples of what a user makes: the resource `docs/adding-a-resource.md`
# adds and the service `docs/generating-a-service.md` generates exist once they are made.
ILLUSTRATIVE = re.compile(r"\b(invoices?|billing)\b")
TOP_LEVEL = {path.name for path in REPO.iterdir()} - {".git", ".venv"}
CODE = re.compile(r"```[^\n]*\n(.*?)```|`([^`\n]+)`", re.DOTALL)
LINK = re.compile(r"\]\(([^)\s]+)\)")
VARIABLE = re.compile(rf"\b{SERVICE.upper()}_[A-Z0-9_]*[A-Z0-9]\b")
PROBLEM = re.compile(r"/problems/([a-z0-9-]+)")
EVENT_TYPE = re.compile(r"\b[a-z][a-z0-9-]*(?:\.[a-z][a-z0-9_]*){2,}\.v\d+\b")
METRIC = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+_(?:total|seconds|bucket|count|sum|bytes)\b")
TABLE = re.compile(r"`([a-z_]+)` table\b|\btable `([a-z_]+)`")
# `deploy/<name>` is also kubectl's way to name a Deployment: only files are checked there.
NAMED_WITHOUT_SUFFIX = ("src", "tests", "docs", "scripts", "alembic", ".ci", ".github")


def code_of(text: str) -> str:
    """The code spans and code blocks of a Markdown text, one per line."""
    return "\n".join(block or span for block, span in CODE.findall(text))


def m2m_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from m2m_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from m2m_strings(item)


def documents() -> Iterator[tuple[str, str, str]]:
    """(name, the whole text, the part a reader copies) of every document."""
    for path in MARKDOWN:
        text = path.read_text(encoding="utf-8")
        yield str(path.relative_to(REPO)), text, code_of(text)
    for path in sorted((REPO / "m2m").glob("*.json")):
        strings = "\n".join(m2m_strings(json.loads(path.read_text(encoding="utf-8"))))
        yield str(path.relative_to(REPO)), strings, strings
    env = (REPO / ".env.example").read_text(encoding="utf-8")
    yield ".env.example", env, env


DOCUMENTS = list(documents())
SOURCE = "\n".join(
    path.read_text(encoding="utf-8")
    for folder in ("src", "scripts", "observability", "deploy", ".github", ".ci")
    for path in (REPO / folder).rglob("*")
    if path.is_file() and path.suffix != ".pyc" and "__pycache__" not in path.parts
) + "\n".join((REPO / name).read_text() for name in ("Makefile", "compose.yml", "compose-dev.yml"))


def each(pattern: re.Pattern[str], part: str = "code") -> Iterator[tuple[str, str]]:
    for name, text, code in DOCUMENTS:
        for found in pattern.finditer(text if part == "text" else code):
            named = next((group for group in found.groups() if group), found[0])
            if not ILLUSTRATIVE.search(named):
                yield name, named


def settings_variables() -> set[str]:
    rows = json.loads((REPO / "m2m" / "settings.json").read_text())
    return {row["variable"] for row in rows}


def test_every_variable_named_is_a_setting_or_read_by_the_code() -> None:
    variables = settings_variables()
    groups = {variable.split("__")[0] + "__" for variable in variables if "__" in variable}
    unknown = {
        (name, found)
        for name, found in each(VARIABLE, "text")
        if found not in variables and found + "__" not in groups and found not in SOURCE
    }
    assert unknown == set()


def test_every_make_target_named_exists() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.MULTILINE))
    named = each(re.compile(r"(?:^|[\s(`$])make ([a-z][a-z-]*)"))
    assert {(name, target) for name, target in named if target not in targets} == set()


def test_every_command_named_exists() -> None:
    subcommands = set(re.findall(r"^    ([a-z-]+) ", _parser().format_help(), flags=re.MULTILINE))
    # `orders <word>` as a command: at the start of a code line, in the checkout's .venv, or
    # after `$`.
    command = re.compile(rf"(?:^|\.venv/bin/|\$ ){SERVICE} ([a-z][a-z-]+)", re.MULTILINE)
    named = {
        (name, found)
        for name, text, code in DOCUMENTS
        if name.endswith(".md")
        for found in command.findall(code)
    }
    assert {(name, sub) for name, sub in named if sub not in subcommands} == set()


def test_commands_are_named_as_a_checkout_and_the_image_have_them() -> None:
    """`make install` may put uv in .tools/bin, off PATH, but always puts the tools in .venv/bin;
    the image has `orders` on PATH. So the docs say `.venv/bin/orders`, never `uv run ...`."""
    named = {(name, line) for name, line in each(re.compile(r"^.*\buv run\b.*$", re.MULTILINE))}
    assert named == set()


def test_every_problem_type_named_is_raised_by_the_code() -> None:
    slugs = set(re.findall(r'"([a-z0-9-]+)"', SOURCE))
    # Framework errors take the slug of their status phrase (core.errors.problem).
    slugs |= {status.phrase.lower().replace(" ", "-") for status in HTTPStatus}
    unknown = {(name, slug) for name, slug in each(PROBLEM, "text") if slug not in slugs}
    assert unknown == set()


def test_every_event_type_named_is_published_or_consumed() -> None:
    prefix = OrdersSettings(_env_file=None).events.type_prefix
    known = {event_type for event_type, _ in published_events(prefix)}
    known |= {event_type for registry in RECEIVED_EVENTS for event_type, _ in registry}
    unknown = {(name, found) for name, found in each(EVENT_TYPE, "text") if found not in known}
    assert unknown == set()


def test_every_metric_named_is_registered_by_the_code() -> None:
    def registered(metric: str) -> bool:
        """Named in the code: a metric (less the suffix Prometheus adds) or a setting."""
        return re.sub(r"_(total|bucket|count|sum)$", "", metric) in SOURCE

    unknown = {(name, metric) for name, metric in each(METRIC) if not registered(metric)}
    assert unknown == set()


def test_every_table_named_exists() -> None:
    tables = {*Base.metadata.tables, "alembic_version"}
    unknown = {(name, table) for name, table in each(TABLE, "text") if table not in tables}
    assert unknown == set()


def test_every_stream_named_exists() -> None:
    streams = {row["stream"] for row in json.loads((REPO / "m2m" / "streams.json").read_text())}
    # Derived streams are `<stream>:<kind>[:...]`; scopes (`orders:read`) share the shape.
    kinds = {stream.split(":")[1] for stream in streams if ":" in stream}
    alternatives = "|".join(map(re.escape, kinds)) or "$^"
    named = re.compile(rf"\b[a-z][a-z0-9_-]*:(?:{alternatives})(?::[a-z0-9_-]+)*\b")
    unknown = {(name, stream) for name, stream in each(named) if stream not in streams}
    assert unknown == set()


def repository_paths(name: str, text: str, code: str) -> Iterator[Path]:
    """Paths a document names: code spans that start at a top-level entry, and relative links."""
    for word in re.findall(r"[\w./*-]+", code):
        token = re.sub(r"(:\d+(-\d+)?)?[.,:;]*$", "", word)
        first, _, rest = token.partition("/")
        is_file = "." in token.rsplit("/", 1)[-1] or token.endswith("/")
        if first in TOP_LEVEL and (is_file or (rest and first in NAMED_WITHOUT_SUFFIX)):
            yield REPO / token
    if name.endswith(".md"):
        for target in LINK.findall(text):
            if not re.match(r"[a-z]+:|#", target):
                yield (REPO / name).parent / target.split("#")[0]


@pytest.mark.parametrize("document", [name for name, _, _ in DOCUMENTS])
def test_every_repository_path_named_exists(document: str) -> None:
    _, text, code = next(entry for entry in DOCUMENTS if entry[0] == document)
    missing = {
        str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
        for path in repository_paths(document, text, code)
        if not ILLUSTRATIVE.search(str(path))
        and not (any(path.parent.glob(path.name)) if "*" in path.name else path.exists())
    }
    assert missing == set()


def test_every_log_event_named_is_logged_by_the_code() -> None:
    # Log events are `noun.past_verb` literals; a name whose noun the code logs under is one.
    literals = set(re.findall(r'"([a-z][a-z_]*\.[a-z][a-z_]*)"', SOURCE))
    nouns = {literal.split(".")[0] for literal in literals} - {"orders"}
    # Not a host name (`nats.internal:4222`, `//nats.internal`) nor a dotted path.
    event = re.compile(rf"(?<![/@\w.])(?:{'|'.join(sorted(nouns))})\.[a-z][a-z_]*(?![\w:.])")
    defined = set(re.findall(r"\b(?:def|class) (\w+)|^\s*(\w+) *[:=]", SOURCE, re.MULTILINE))
    names = {part for pair in defined for part in pair if part}

    def logged(found: str) -> bool:
        """A literal the code logs, or a module's function, file or attribute (`database.py`)."""
        return found in literals or found.split(".")[1] in names | {"py", "md", "json", "yml"}

    unknown = {(name, found) for name, found in each(event) if not logged(found)}
    assert unknown == set()


def test_the_docs_speak_of_the_project_only() -> None:
    """No work-tracking history in the docs: what they say must hold for whoever reads them."""
    history = re.compile(
        r"\b(?:issue|session) \d+\b|\bthis session\b|\bthe development machine\b", re.IGNORECASE
    )
    said = {(name, found[0]) for name, text, _ in DOCUMENTS for found in history.finditer(text)}
    assert said == set()


def test_every_dashboard_panel_named_exists() -> None:
    dashboards = [json.loads(p.read_text()) for p in (REPO / "observability").rglob("*.json")]
    panels = [panel for dashboard in dashboards for panel in dashboard.get("panels", [])]
    titles = {panel.get("title") for panel in panels}
    shown = json.dumps(panels)  # a metric a panel's query reads
    named = re.compile(r"`([^`]+)` panels?\b|`([^`]+)`(?=(?:, `[^`]+`)* and `[^`]+` panels)")
    unknown = {(name, found) for name, found in each(named, "text") if found not in titles}
    assert {(name, found) for name, found in unknown if found not in shown} == set()
    has_rows = any(panel.get("type") == "row" for panel in panels)
    assert has_rows or not [name for name, text, _ in DOCUMENTS if "dashboard row" in text]


def test_every_log_level_said_of_an_event_is_the_one_it_is_logged_at() -> None:
    logged: dict[str, set[str]] = {}
    calls = r"\.(debug|info|warning|error|exception|critical)\(\s*\"([a-z][a-z_]*\.[a-z][a-z_]*)\""
    for level, event in re.findall(calls, SOURCE):
        logged.setdefault(event, set()).add("ERROR" if level == "exception" else level.upper())
    wrong = set()
    for name, text, _ in DOCUMENTS:
        # A clause that names one level speaks of the events it names.
        for clause in re.split(r"; |\.\s|\n\n", text.replace("\n", " ")):
            levels = set(re.findall(r"\b(DEBUG|INFO|WARNING|ERROR)\b", clause))
            if len(levels) == 1:
                for event in re.findall(r"`([a-z][a-z_]*\.[a-z][a-z_]*)`", clause):
                    if event in logged and not levels <= logged[event]:
                        wrong.add((name, event, *levels))
    assert wrong == set()


# Words a newcomer meets, each with what explains it: its explanation, or a link to the page
# that gives one.
TERMS = {
    "m2m": (r"\bm2m\b(?!/)", r"machine to machine|m2m/README\.md"),
    "floor": (r"\bfloor\b", r"written by hand|fastest honest code|performance\.md"),
    "drill": (r"\bdrills?\b", r"breaks? something\s+on\s+purpose|events\.md"),
    "hold": (
        r"\b(?:a|the|its|their|each) holds?\b|\bholds? (?:come|end|start)",
        r"events\.md|holds? (?:its|one) aggregate|keeps one aggregate's events back",
    ),
    "poison": (r"\bpoison(?:ed)?\b", r"can never be handled|can never handle|events\.md"),
}


def test_every_term_is_explained_where_a_document_first_uses_it() -> None:
    unexplained = set()
    for path in MARKDOWN:
        prose = CODE.sub("", path.read_text(encoding="utf-8"))
        paragraphs = prose.split("\n\n")
        for term, (used, explained) in TERMS.items():
            first = next((p for p in paragraphs if re.search(used, p, re.IGNORECASE)), None)
            defined_here = path.name == "events.md" and f"*{term}*" in prose
            if first is not None and not defined_here and not re.search(explained, first):
                unexplained.add((str(path.relative_to(REPO)), term))
    assert unexplained == set()
