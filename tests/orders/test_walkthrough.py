"""The walkthrough (docs/walkthrough.md), run as written against the real server process."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

# A real process per test (seconds each): CI runs it, `make test-fast` leaves it out.
pytestmark = pytest.mark.slow


def test_the_walkthrough_runs_as_written(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    base_url, _ = server
    guide = Path("docs/walkthrough.md").read_text()
    script = guide.split("## The API", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    script = script.replace("localhost:8000", base_url.removeprefix("http://")).replace(
        ".venv/bin/orders", f"{sys.executable} -m orders"
    )
    result = subprocess.run(
        ["/bin/bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    statuses = re.findall(r"HTTP/1.1 (\d{3})", result.stdout)
    assert statuses == ["401", "201", "201", "200", "200", "412", "200", "409"]
    assert result.stdout.lower().count("idempotent-replayed: true") == 1
    assert '"status":"ready"' in result.stdout
