"""The Dockerfile read as stages, and the rules for the image's final stage."""

import json
import re
from dataclasses import dataclass
from pathlib import Path

# Package names and commands that only building needs; none may reach the final stage.
BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|clang|cc|make|build-essential|[\w.+-]+-dev|pip install|uv)\b", re.IGNORECASE
)
NUMERIC_USER = re.compile(r"(?P<uid>\d+)(:\d+)?")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY ...
    value: str
    line: int


def stages(dockerfile: Path) -> list[list[Instruction]]:
    """Instructions grouped by stage, continuation lines joined, comments left out."""
    found: list[list[Instruction]] = []
    pending, start = "", 0
    for number, raw in enumerate(dockerfile.read_text().splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        start = start or number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, value = (pending + line).partition(" ")
        pending, instruction = "", Instruction(keyword.upper(), value.strip(), start)
        start = 0
        if instruction.keyword == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def final_command(dockerfile: Path) -> list[str]:
    """ENTRYPOINT followed by CMD of the final stage, both in exec (JSON) form."""
    last = {i.keyword: i.value for i in stages(dockerfile)[-1]}
    return [*json.loads(last.get("ENTRYPOINT", "[]")), *json.loads(last.get("CMD", "[]"))]


def image_problems(dockerfile: Path) -> list[str]:
    """What the final stage must hold: a numeric non-root user, no build tools, no dev deps."""
    every_stage = stages(dockerfile)
    final = every_stage[-1]
    syncs = [i for stage in every_stage for i in stage if "uv sync" in i.value]
    return [
        *_user_problems(final),
        *_final_stage_problems(final),
        *(
            f"Dockerfile:{sync.line}: `uv sync` without --frozen --no-dev would put unlocked "
            "or dev dependencies into the image"
            for sync in syncs
            if not {"--frozen", "--no-dev"} <= set(sync.value.split())
        ),
    ]


def _user_problems(final: list[Instruction]) -> list[str]:
    users = [i for i in final if i.keyword == "USER"]
    if not users:
        return ["Dockerfile: the final stage sets no USER, so the container runs as root"]
    user = NUMERIC_USER.fullmatch(users[-1].value)
    if user is None or int(user["uid"]) == 0:
        user_line = f"Dockerfile:{users[-1].line}: USER {users[-1].value}"
        return [f"{user_line} is not a numeric non-root uid (such as 10001:10001)"]
    return []


def _final_stage_problems(final: list[Instruction]) -> list[str]:
    problems = []
    for instruction in final:
        tool = BUILD_TOOLS.search(instruction.value) if instruction.keyword == "RUN" else None
        if tool:
            problems.append(
                f"Dockerfile:{instruction.line}: the final stage installs build tools "
                f"({tool[0]}); build in an earlier stage"
            )
        copied = re.match(r"--from=\S+\s+(?P<source>\S+)", instruction.value)
        if instruction.keyword == "COPY" and copied and not copied["source"].endswith(".venv"):
            problems.append(
                f"Dockerfile:{instruction.line}: the final stage copies {copied['source']} from "
                "another stage; only the virtual environment belongs there"
            )
    if not any(i.keyword == "HEALTHCHECK" for i in final):
        problems.append("Dockerfile: the final stage has no HEALTHCHECK")
    return problems
