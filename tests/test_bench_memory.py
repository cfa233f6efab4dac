"""``experiments/bench_memory.py`` at a tiny size: both replays keep every block and print the figure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "experiments" / "bench_memory.py"


def test_bench_memory_keeps_every_block_and_prints_bytes_per_block() -> None:
    r = subprocess.run([sys.executable, str(BENCH), "--distinct", "3000"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "trace: one scan over 3,000 distinct blocks, all resident at the end"
    kept = [ln for ln in lines if "resident blocks" in ln]
    assert len(kept) == 2 and all("over 3,000 resident blocks (0 dropped;" in ln for ln in kept), lines
    figures = [float(m.group(1)) for ln in lines if (m := re.fullmatch(r"  bytes per resident block: (\S+) \(target <= 150\)", ln))]
    assert len(figures) == 2 and all(f >= 0 for f in figures), lines


def test_bench_memory_refuses_bad_arguments() -> None:
    for args in (["--distinct", "0"], ["--configs", "three"]):
        r = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.strip().splitlines()[-1].startswith("bench_memory.py: error: --"), r.stderr
