"""`make test` and `make check`: the suite in phases, each timed, coverage combined over all of
them and gated once, and the slowest tests of the whole run printed at the end.

Phases, by path and marker, so a new test lands in one of them and in one only:
  lint       `make lint`
  default    everything not `slow`, outside tests/generator and the container test
  slow       the `slow` drills outside those two
  generated  tests/generator: services generated with copier, their lint and their suites
  containers tests/delivery/test_containers.py: the images built and run
A phase whose paths are absent (a generated service has no tests/generator) is skipped and says
so; a phase that collects nothing (pytest's exit 5) fails, since its tests went missing.
"""

import argparse
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

REPORTS = ".test-reports"
GENERATOR = "tests/generator"
CONTAINERS = "tests/delivery/test_containers.py"
NO_TESTS_COLLECTED = 5
SLOWEST = 25
# scripts/ as far as the suite sees it: the generator and `make resource` run in copied trees.
SCRIPTS_FLOOR = 40
# Every worker has its own database, Redis and NATS (tests/conftest.py); TEST_WORKERS=1 runs a
# phase in one process.
WORKERS = os.environ.get("TEST_WORKERS", "2")


@dataclass
class Phase:
    name: str
    pytest: list[str] = field(default_factory=list)
    # Paths that must exist for the phase to run; none means the phase always runs.
    needs: list[str] = field(default_factory=list)


ELSEWHERE = [f"--ignore={GENERATOR}", f"--ignore={CONTAINERS}"]
PHASES = {
    "lint": Phase("lint"),
    "default": Phase("default", ["-m", "not slow", "-n", WORKERS, *ELSEWHERE]),
    # The fuzz run counts its requests in one process, so its tests are one group; so are
    # each generated service's, which share its tree.
    "slow": Phase("slow", ["-m", "slow", "-n", WORKERS, "--dist", "loadgroup", *ELSEWHERE]),
    "generated": Phase("generated", [GENERATOR, "-n", WORKERS, "--dist", "loadgroup"], [GENERATOR]),
    "containers": Phase("containers", [CONTAINERS], [CONTAINERS]),
}


def command(phase: Phase, root: Path) -> list[str]:
    if phase.name == "lint":
        return ["make", "--no-print-directory", "lint"]
    report = root / REPORTS / f"{phase.name}.xml"
    # Each phase appends its coverage; the gate is applied once, over the combined data.
    coverage = ["--cov", "--cov-append", "--cov-report=", "--cov-fail-under=0"]
    return [sys.executable, "-m", "pytest", *phase.pytest, *coverage, f"--junitxml={report}"]


def run(phase: Phase, root: Path) -> str:
    """The phase's verdict: ok, FAILED (why) or skipped (why)."""
    if phase.needs and not any((root / path).exists() for path in phase.needs):
        return f"skipped: no {', '.join(phase.needs)} here"
    print(f"\n=== {phase.name}: {' '.join(command(phase, root))}", flush=True)
    status = subprocess.run(command(phase, root), cwd=root, check=False).returncode  # noqa: S603
    if status == NO_TESTS_COLLECTED:
        return "FAILED: collected no tests"
    return "ok" if status == 0 else f"FAILED: exit status {status}"


def cases(names: list[str], root: Path) -> list[tuple[float, str, bool]]:
    """Every test in the phases' JUnit reports: its time (setup, call and teardown), its name,
    and whether it failed."""
    found = []
    for name in names:
        report = root / REPORTS / f"{name}.xml"
        if report.exists():
            for case in ET.parse(report).iter("testcase"):  # noqa: S314 - our own pytest's report
                test = f"[{name}] {case.get('classname', '')}::{case.get('name', '')}"
                failed = any(child.tag in {"failure", "error"} for child in case)
                found.append((float(case.get("time", 0)), test, failed))
    return found


def gate(root: Path) -> str:
    """Coverage over every phase: src/ against fail_under (pyproject.toml), scripts/ against
    its own floor."""
    report = [sys.executable, "-m", "coverage", "report", "--show-missing", "--skip-covered"]
    failed = []
    for include, floor in (("src/*", []), ("scripts/*", [f"--fail-under={SCRIPTS_FLOOR}"])):
        print(f"\n=== coverage of {include}", flush=True)
        command = [*report, f"--include={include}", *floor]
        if subprocess.run(command, cwd=root, check=False).returncode != 0:  # noqa: S603
            failed.append(include.removesuffix("/*"))
    return f"FAILED: {', '.join(failed)} under the floor or unmeasured" if failed else "ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phases", nargs="*", metavar="PHASE", default=list(PHASES)[1:])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args(argv)
    if unknown := set(args.phases) - set(PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(unknown))} (known: {', '.join(PHASES)})")
    root: Path = args.root.resolve()
    (root / REPORTS).mkdir(exist_ok=True)
    for stale in (root / REPORTS).glob("*.xml"):
        stale.unlink()
    subprocess.run([sys.executable, "-m", "coverage", "erase"], cwd=root, check=True)
    # Every phase runs, so one run shows every failure; the exit status says whether any failed.
    verdicts: dict[str, tuple[str, float]] = {}
    for name in args.phases:
        started = time.monotonic()
        verdicts[name] = (run(PHASES[name], root), time.monotonic() - started)
    ran = [name for name, (verdict, _) in verdicts.items() if not verdict.startswith("skipped")]
    tested = [name for name in ran if name != "lint"]
    verdicts["coverage"] = (gate(root) if tested else "skipped: no tests ran", 0.0)
    found = cases(tested, root)
    print(f"\n=== the {SLOWEST} slowest tests")
    for seconds, test, _ in sorted(found, reverse=True)[:SLOWEST]:
        print(f"{seconds:8.1f} s  {test}")
    # Named again here: a phase's own summary scrolls far up, behind the coverage reports.
    if failures := [test for _, test, failed in found if failed]:
        print("\n=== failed tests\n" + "\n".join(failures))
    print("\n=== phases")
    for name, (verdict, seconds) in verdicts.items():
        print(f"{name:<11} {seconds:8.1f} s  {verdict}")
    print(f"{'total':<11} {sum(seconds for _, seconds in verdicts.values()):8.1f} s")
    return 1 if any(verdict.startswith("FAILED") for verdict, _ in verdicts.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
