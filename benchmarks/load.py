"""The moving parts of the HTTP benchmark: server processes, wrk runs, process readings."""

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

WRK_SCRIPT = Path(__file__).parent / "wrk" / "orders.lua"
CONNECTIONS = 64
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Run:
    """One wrk run against one server: its throughput, latency and the server's CPU."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_seconds: float
    failed: int = 0  # non-2xx/3xx answers; reported, not fatal (a pool timeout is a finding)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_seconds * 1000 / max(self.requests, 1)


def wrk_command(url: str, seconds: int, mode: str, *args: str) -> list[str]:
    return [
        "wrk",
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT.relative_to(Path.cwd(), walk_up=True)),
        url,
        "--",
        mode,
        *args,
    ]


class Server:
    """One API process (the template's `orders serve` or the floor), started and measured."""

    def __init__(self, name: str, module: str, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.port = int(env["ORDERS_SERVER__PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        started = time.perf_counter()
        with log.open("wb") as output:
            self.process = subprocess.Popen(  # noqa: S603 - our own command
                [sys.executable, "-m", module, *(["serve"] if module == "orders" else [])],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.started = started
        self.ready_seconds = 0.0

    def wait_ready(self, path: str) -> float:
        """Seconds from the process's start to the first 200 from `path`."""
        deadline = self.started + 30
        with httpx.Client(base_url=self.url, timeout=1) as client:
            while time.perf_counter() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
                try:
                    if client.get(path).status_code == 200:  # noqa: PLR2004
                        self.ready_seconds = time.perf_counter() - self.started
                        return self.ready_seconds
                except httpx.TransportError:
                    pass
                time.sleep(0.01)
        raise TimeoutError(f"{self.name} was not ready within 30 s")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def load(self, seconds: int, mode: str, *args: str, token: str | None = None) -> Run:
        cpu = self.cpu_seconds()
        env = {**os.environ, "BENCH_TOKEN": token} if token else None
        result = subprocess.run(  # noqa: S603 - wrk, installed by scripts/bench-tools
            wrk_command(self.url, seconds, mode, *args),
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        cpu = self.cpu_seconds() - cpu
        found = json.loads(result.stdout.strip().splitlines()[-1])
        if found["socket_errors"]:
            raise RuntimeError(f"{self.name} {mode}: connections failed under load: {found}")
        return Run(
            requests=found["requests"],
            seconds=found["duration_us"] / 1e6,
            p50_ms=found["p50_us"] / 1000,
            p99_ms=found["p99_us"] / 1000,
            cpu_seconds=cpu,
            failed=found["http_errors"],
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
