"""The HTTP benchmark's report: Markdown tables, and their section of docs/performance.md."""

import datetime as dt
import statistics
from dataclasses import dataclass
from pathlib import Path

from benchmarks.load import Run

BEGIN, END = "<!-- make bench: begin -->", "<!-- make bench: end -->"
TITLES = {"read": "read one order", "list": "list one page", "create": "create an order"}
RATE_TARGET, P99_TARGET = 0.5, 2.5
RSS_TARGET_MB, READY_TARGET_S, SUITE_TARGET_S = 150, 3.0, 120


@dataclass(frozen=True, slots=True)
class Setup:
    machine: str
    load_average: tuple[float, float, float]
    commit: str
    wrk: str
    rounds: int
    seconds: int
    warm_up: int
    connections: int
    pool_size: int
    seed_orders: int
    variant: tuple[str, ...] = ()  # settings given to the template only (--template-env)


@dataclass(frozen=True, slots=True)
class Measurements:
    runs: dict[str, dict[str, list[Run]]]  # endpoint -> server -> one run per round
    rss_mb: dict[str, float]
    ready_seconds: dict[str, float]
    access_log_lines: int
    suite: tuple[float, str] | None  # wall seconds, pytest's summary


def median(runs: list[Run], value: str) -> float:
    values: list[float] = [getattr(run, value) for run in runs]
    return statistics.median(values)


def ratio(runs: dict[str, list[Run]], value: str) -> float:
    return median(runs["template"], value) / median(runs["floor"], value)


def results_table(measured: Measurements) -> list[str]:
    lines = [
        (
            "| endpoint | floor req/s | template req/s | template/floor | p50 floor / template "
            "| p99 floor / template | p99 template/floor | server CPU per request floor / template "
            "| template/floor req/s by round | failed answers floor / template |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for endpoint, runs in measured.runs.items():
        floor, template = runs["floor"], runs["template"]
        by_round = ", ".join(f"{t.rate / f.rate:.2f}" for f, t in zip(floor, template, strict=True))
        lines.append(
            f"| {TITLES[endpoint]} | {median(floor, 'rate'):,.0f} | {median(template, 'rate'):,.0f}"
            f" | **{ratio(runs, 'rate'):.2f}x**"
            f" | {median(floor, 'p50_ms'):.1f} / {median(template, 'p50_ms'):.1f} ms"
            f" | {median(floor, 'p99_ms'):.1f} / {median(template, 'p99_ms'):.1f} ms"
            f" | **{ratio(runs, 'p99_ms'):.2f}x**"
            f" | {median(floor, 'cpu_ms_per_request'):.2f} /"
            f" {median(template, 'cpu_ms_per_request'):.2f} ms | {by_round}"
            f" | {sum(r.failed for r in floor)} / {sum(r.failed for r in template)} |"
        )
    return lines


def verdict(ok: bool) -> str:  # noqa: FBT001
    return "meets" if ok else "**MISSES**"


def targets_table(measured: Measurements) -> list[str]:
    rows: list[tuple[str, str, bool]] = []
    for endpoint in ("read", "list", "create"):
        value = ratio(measured.runs[endpoint], "rate")
        rows.append(
            (
                f"{TITLES[endpoint]}: template >= {RATE_TARGET}x the floor's req/s",
                f"{value:.2f}x",
                value >= RATE_TARGET,
            )
        )
    for endpoint in ("read", "list", "create"):
        value = ratio(measured.runs[endpoint], "p99_ms")
        rows.append(
            (
                f"{TITLES[endpoint]}: p99 at 64 connections <= {P99_TARGET}x the floor's",
                f"{value:.2f}x",
                value <= P99_TARGET,
            )
        )
    rss, ready = measured.rss_mb["template"], measured.ready_seconds["template"]
    rows.append(
        (
            f"one API worker's RSS after the run < {RSS_TARGET_MB} MB",
            f"{rss:.0f} MB (floor {measured.rss_mb['floor']:.0f} MB)",
            rss < RSS_TARGET_MB,
        )
    )
    rows.append(
        (
            f"process start to `/health/ready` 200 < {READY_TARGET_S:.0f} s",
            f"{ready:.2f} s (floor, first 200: {measured.ready_seconds['floor']:.2f} s)",
            ready < READY_TARGET_S,
        )
    )
    if measured.suite is not None:
        seconds, summary = measured.suite
        rows.append(
            (
                f"default test suite (`make test-fast`) < {SUITE_TARGET_S} s",
                f"{seconds:.0f} s ({summary})",
                seconds < SUITE_TARGET_S,
            )
        )
    lines = ["| target | result | verdict |", "|---|---|---|"]
    lines += [f"| {target} | {result} | {verdict(ok)} |" for target, result, ok in rows]
    return lines


def render(setup: Setup, measured: Measurements) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{value:.2f}" for value in setup.load_average)
    started = (
        f"Run of {now}, commit `{setup.commit}`, on {setup.machine}. Load average when it "
        f"started: {load}."
    )
    how = (
        f"Command: `make bench`. Every run is `{setup.wrk}`; per endpoint {setup.rounds} "
        f"rounds alternate which server goes first, each run after a discarded "
        f"{setup.warm_up} s warm-up, {setup.seconds} s measured. {setup.seed_orders:,} "
        f"seeded orders of two lines; one uvicorn worker per server, pools of "
        f"{setup.pool_size}. Figures are medians over the rounds; ratios are template/floor."
    )
    if setup.variant:
        how += f" The template ran with {', '.join(f'`{v}`' for v in setup.variant)}."
    logged = (
        f"The template wrote {measured.access_log_lines:,} `http.request` log lines (INFO, "
        "JSON, to a file) during the run: logging, metrics and tracing were on."
    )
    return "\n".join(
        [started, "", how, "", *results_table(measured), "", logged, "", *targets_table(measured)]
    )


def write_section(path: Path, section: str) -> None:
    """Replace the generated section of `path`, keeping what is written around it."""
    text = path.read_text() if path.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    before, rest = text.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    path.write_text(f"{before}{BEGIN}\n{section}\n{END}{after}")
