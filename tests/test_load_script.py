"""benchmarks/load.py runs end to end: it generates filings, starts gunicorn, drives the clients and prints its
figures. A smoke run (``--quick``), not a measurement: the targets are judged by the full run, on a quiet machine
(docs/reliability.md); here only that every figure is printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GROUPS = ("list /library", "search /library?q=", "entry /library/<number>", "api /api/v1/library…", "overall")
FIGURES = r"\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)$"  # requests errors p50 p95 p99 req/s


@pytest.mark.slow
def test_the_quick_load_run_prints_the_figures_of_every_group_and_of_the_floor(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_") and k != "DATABASE_URL"}
    env["TMPDIR"] = str(tmp_path)  # the run's instance folder, removed by the script (and by pytest)
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "load.py"), "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode in (0, 1), output[-3000:]  # 1: a target missed (judged by the full run)
    assert re.search(r"^Warm-up on SQLite, from the server's start", output, re.MULTILINE), output[-3000:]
    measured = output[output.index(", measured") :]  # the figures held to the targets, after the warm-up's
    for group in (*GROUPS, "floor"):
        match = re.search(rf"^\s+{re.escape(group)}{FIGURES}", measured, re.MULTILINE)
        assert match, f"no figures for {group}:\n{output[-3000:]}"
        requests, errors = int(match.group(1)), int(match.group(2))
        assert requests > 0 and errors == 0, (group, match.group(0))
    assert re.search(r"Ratios: throughput [\d.]+% of the floor's", output), output[-2000:]
    assert re.search(r"(PASS|MISS)\s+p95 \d+ ms < 100 ms", output)
    assert list(tmp_path.iterdir()) == [], "the run left its instance folder behind"
