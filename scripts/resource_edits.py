"""The edits `new_resource.py` makes to the modules that list the service's resources, and
the migration head it builds on.

Each one parses the module with `ast` to find where the new lines go, so it works on the
example service and on one generated without it; ruff then sorts and merges the imports.
"""

import ast
from pathlib import Path


def add_imports(source: str, imports: list[str]) -> str:
    """Insert the import lines (`import x`, `from x import Y`) the module lacks after its
    imports, or after its docstring when it has none."""
    tree = ast.parse(source)
    present: set[str] = set()
    after = 0
    for index, node in enumerate(tree.body):
        if isinstance(node, ast.ImportFrom):
            present |= {f"from {node.module} import {alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            present |= {f"import {alias.name}" for alias in node.names}
        elif index == 0 and _is_docstring(node):
            pass
        else:
            break
        after = node.end_lineno or 0
    missing = [line for line in imports if line not in present]
    if not missing:
        return source
    lines = source.splitlines(keepends=True)
    block = "".join(f"{line}\n" for line in missing)
    return "".join([*lines[:after], "\n" if after and not present else "", block, *lines[after:]])


def append(source: str, block: str) -> str:
    return source.rstrip("\n") + "\n\n\n" + block.strip("\n") + "\n"


def register_model(source: str, pkg: str, plural: str, model: str) -> str:
    """Import the model and list it in `__all__`."""
    source = add_imports(source, [f"from {pkg}.models.{plural} import {model}"])
    node = _assignment(ast.parse(source), "__all__")
    names = sorted({*ast.literal_eval(node.value), model}) if node.value else [model]
    listed = ", ".join(f'"{name}"' for name in names)
    return _replace_lines(source, node, f"__all__ = [{listed}]\n")


def register_routes(source: str, pkg: str, plural: str) -> str:
    source = add_imports(source, [f"from {pkg}.routes import {plural}"])
    return source.rstrip("\n") + f"\nv1.include_router({plural}.router)\n"


def register_repository(source: str, pkg: str, plural: str, repository: str) -> str:
    """Give the unit of work a typed `uow.<plural>`, built on each new session in `_bind`."""
    source = add_imports(
        source,
        [
            "from sqlalchemy.ext.asyncio import AsyncSession",
            f"from {pkg}.repositories.{plural} import {repository}",
        ],
    )
    unit = _unit_of_work_class(ast.parse(source))
    lines = source.splitlines(keepends=True)
    attribute = f"    {plural}: {repository}\n"
    bind = next(
        (n for n in unit.body if isinstance(n, ast.FunctionDef) and n.name == "_bind"), None
    )
    if bind is None:
        method = (
            "    def _bind(self, session: AsyncSession) -> None:\n"
            f"        self.{plural} = {repository}(session)\n"
        )
        docstring = unit.body[0] if _is_docstring(unit.body[0]) else None
        # The empty unit of work says it has no repositories yet: no longer true.
        if docstring is not None and "No repositories yet" in ast.unparse(docstring):
            start, end = docstring.lineno - 1, docstring.end_lineno or docstring.lineno
            lines[start:end] = [attribute, "\n", method]
        else:
            end = unit.end_lineno or unit.lineno
            lines[end:end] = ["\n", attribute, "\n", method]
        return "".join(lines)
    session = bind.args.args[1].arg
    end = bind.end_lineno or bind.lineno
    lines[end:end] = [f"        self.{plural} = {repository}({session})\n"]
    annotations = [n for n in unit.body if isinstance(n, ast.AnnAssign)]
    if annotations:
        at = annotations[-1].end_lineno or annotations[-1].lineno
        lines[at:at] = [attribute]
    else:
        at = min([bind.lineno, *(d.lineno for d in bind.decorator_list)]) - 1
        lines[at:at] = [attribute, "\n"]
    return "".join(lines)


def register_events(source: str, block: str, constant: str) -> str:
    """Put the resource's event classes before `PUBLISHED_EVENTS` and list them in it."""
    source = add_imports(source, ["import uuid", "from typing import ClassVar"])
    node = _assignment(ast.parse(source), "PUBLISHED_EVENTS")
    lines = source.splitlines(keepends=True)
    start = node.lineno - 1
    while start > 0 and lines[start - 1].startswith("#"):  # the comment above it stays above it
        start -= 1
    lines[start:start] = [block.strip("\n") + "\n\n\n"]
    source = "".join(lines)
    node = _assignment(ast.parse(source), "PUBLISHED_EVENTS")
    if not isinstance(node.value, ast.Tuple):
        raise SystemExit("PUBLISHED_EVENTS is not a tuple literal: add the events by hand")
    elements = [ast.get_source_segment(source, element) or "" for element in node.value.elts]
    elements.append(f"*{constant}")
    listed = ", ".join(elements) + ("," if len(elements) == 1 else "")
    target = "PUBLISHED_EVENTS"
    if isinstance(node, ast.AnnAssign):
        target += f": {ast.get_source_segment(source, node.annotation)}"
    return _replace_lines(source, node, f"{target} = ({listed})\n")


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _assignment(tree: ast.Module, name: str) -> ast.Assign | ast.AnnAssign:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            return node  # type: ignore[return-value]
    raise SystemExit(f"no `{name} = ...` found: add the resource by hand")


def _unit_of_work_class(tree: ast.Module) -> ast.ClassDef:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
            ast.unparse(base).endswith("UnitOfWork") for base in node.bases
        ):
            return node
    raise SystemExit("no UnitOfWork subclass found in unit_of_work.py")


def _replace_lines(source: str, node: ast.stmt, text: str) -> str:
    lines = source.splitlines(keepends=True)
    lines[node.lineno - 1 : node.end_lineno] = [text]
    return "".join(lines)


def current_head(versions: Path) -> str | None:
    """The one revision no other revision names as its down_revision."""
    revisions: dict[str, object] = {}
    for path in versions.glob("*.py"):
        found = {}
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
                target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
                if isinstance(target, ast.Name):
                    found[target.id] = node.value
        revisions[ast.literal_eval(found["revision"])] = ast.literal_eval(found["down_revision"])
    parents = {down for down in revisions.values() if isinstance(down, str)}
    parents |= {d for down in revisions.values() if isinstance(down, tuple) for d in down}
    heads = sorted(set(revisions) - parents)
    if len(heads) > 1:
        raise SystemExit(f"alembic/versions has several heads {heads}: merge them first")
    return heads[0] if heads else None
