"""The exact curves' memory: the estimate said before the work against tracemalloc's peak, the
reference count (known or counted), and the refusal beyond ``mrc.memory_budget`` (API and CLI)."""

from __future__ import annotations

import json
import subprocess
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exo_sim.errors import ConfigError
from exo_sim.mrc import plan_mrc, run_mrc
from exo_sim.mrc_memory import check_exact_curve_memory, count_refs, exact_curve_bytes, padded
from exo_sim.workloads.oracle_general import RECORD


def oracle_trace(path: Path, n: int, ids: int, seed: int = 0) -> Path:
    """``n`` single-block requests over ``ids`` distinct ids, uniformly drawn."""
    rec = np.zeros(n, dtype=RECORD)
    rec["ts"] = np.arange(n)
    rec["obj_id"] = np.random.default_rng(seed).integers(0, ids, n)
    rec["obj_size"] = 1
    rec["next_vtime"] = -1
    rec.tofile(path)
    return path


def chained_trace(path: Path, n: int, seed: int = 0) -> Path:
    """Mooncake JSONL: each request a prefix of one of 40 chains (equal ids, equal prefixes) and a
    partial last block of its own, as in Mooncake's traces (a partial block's hash is not a full one's)."""
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for i in range(n):
            root, k = int(rng.integers(0, 40)), int(rng.integers(1, 30))
            inp = 512 * (k - 1) + int(rng.integers(1, 512))
            ids = [root * 1000 + j for j in range(k - 1)] + [10**6 + i]
            f.write(json.dumps({"timestamp": i, "input_length": inp, "output_length": 3, "hash_ids": ids}) + "\n")
    return path


def peak_and_estimate(cfg: Any) -> tuple[int, int]:
    """(tracemalloc peak of the exact curves, the estimate said before them), in bytes."""
    plan = plan_mrc(cfg)
    estimate = check_exact_curve_memory(cfg, plan.workload, plan.policies, plan.reuse)
    tracemalloc.start()
    try:
        run_mrc(cfg, plan=plan)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, estimate.need_bytes


def test_padded() -> None:
    assert [padded(n) for n in (0, 1, 2, 3, 4, 5, 1000, 1024, 1025)] == [0, 1, 2, 4, 4, 8, 1024, 1024, 2048]


def test_estimate_by_hand() -> None:
    # 1000 references, LRU, block reuse: 42 m + 32 m + 65 S with S = 1024 (module docstring)
    assert exact_curve_bytes(1000, ["lru"], "block") == 42_000 + 32_000 + 65 * 1024
    # prefix reuse: the later stage's 288 m is above 124 m + 32 m + 65 S = 222 560
    assert exact_curve_bytes(1000, ["lru"], "prefix") == 288_000
    # no LRU: only the trace's arrays
    assert exact_curve_bytes(1000, ["fifo"], "block") == 43_000


CASES = [
    # (name, trace kind, overrides); every trace is a file written here, so the workload holds one chunk
    ("block, all reuse", "oracle_hot", ["hierarchy.reuse=block"]),
    ("block, little reuse", "oracle_cold", ["hierarchy.reuse=block"]),
    ("block, chains", "chained", ["hierarchy.reuse=block", "block_tokens=512"]),
    ("prefix, chains", "chained", ["hierarchy.reuse=prefix", "block_tokens=512"]),
]


@pytest.mark.parametrize("name,kind,overrides", CASES, ids=[c[0] for c in CASES])
def test_estimate_bounds_the_measured_peak(
    make_cfg: Callable[..., Any], tmp_path: Path, name: str, kind: str, overrides: list[str]
) -> None:
    """The estimate is at least the peak (5 % for Python's small objects), and at most 3x it."""
    if kind == "oracle_hot":
        wl = ["workload=oracle_general", f"workload.path={oracle_trace(tmp_path / 't.bin', 150_000, 1000)}"]
    elif kind == "oracle_cold":
        wl = ["workload=oracle_general", f"workload.path={oracle_trace(tmp_path / 't.bin', 100_000, 1_000_000)}"]
    else:
        wl = ["workload=mooncake", f"workload.path={chained_trace(tmp_path / 't.jsonl', 6000)}"]
    cfg = make_cfg("experiment=single_tier", *wl, *overrides, "mrc.points=10", "mrc.jobs=1")
    peak, estimate = peak_and_estimate(cfg)
    assert peak <= 1.05 * estimate, (name, peak, estimate)
    assert estimate <= 3 * peak, (name, peak, estimate)


def test_reference_count_known_or_counted(make_cfg: Callable[..., Any], tmp_path: Path) -> None:
    path = oracle_trace(tmp_path / "t.bin", 5000, 100)
    plan = plan_mrc(make_cfg("experiment=single_tier", "workload=oracle_general", f"workload.path={path}"))
    assert count_refs(plan.workload) == (5000, "known from the workload")
    path = chained_trace(tmp_path / "t.jsonl", 300)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    plan = plan_mrc(make_cfg("experiment=single_tier", "workload=mooncake", f"workload.path={path}", "block_tokens=256"))
    # at 256-token blocks each 512-token hash id is two blocks, the last one too when its tail is > 256 tokens
    want = sum(-(-r["input_length"] // 256) for r in lines)
    assert count_refs(plan.workload) == (want, "counted in a first pass over the trace")


def test_a_budget_below_the_estimate_is_refused(make_cfg: Callable[..., Any], tmp_path: Path) -> None:
    path = oracle_trace(tmp_path / "t.bin", 5000, 100)
    cfg = make_cfg("experiment=single_tier", "workload=oracle_general", f"workload.path={path}", "mrc.memory_budget=100kB")
    plan = plan_mrc(cfg)
    need = exact_curve_bytes(5000, ["lru"], "block")
    assert need > 100_000
    with pytest.raises(ConfigError) as err:
        check_exact_curve_memory(cfg, plan.workload, plan.policies, plan.reuse)
    assert err.value.key == "mrc.memory_budget"
    assert "mrc.sample_rate=0.1" in str(err.value)  # 100 kB / 602 kB: a tenth of the blocks
    cfg = make_cfg("experiment=single_tier", "workload=oracle_general", f"workload.path={path}", "mrc.memory_budget=1MB")
    got = check_exact_curve_memory(cfg, plan.workload, plan.policies, plan.reuse)
    assert (got.references, got.need_bytes, got.budget_bytes) == (5000, need, 1_000_000)


@pytest.mark.parametrize("value", ["0", "10Gb", "-5"])
def test_a_bad_budget_is_refused(make_cfg: Callable[..., Any], tmp_path: Path, value: str) -> None:
    path = oracle_trace(tmp_path / "t.bin", 100, 10)
    cfg = make_cfg("experiment=single_tier", "workload=oracle_general", f"workload.path={path}", f"mrc.memory_budget={value}")
    plan = plan_mrc(cfg)
    with pytest.raises(ConfigError) as err:
        check_exact_curve_memory(cfg, plan.workload, plan.policies, plan.reuse)
    assert err.value.key == "mrc.memory_budget"


def test_exo_mrc_says_the_estimate_and_refuses_beyond_the_budget(tmp_path: Path) -> None:
    path = oracle_trace(tmp_path / "t.bin", 5000, 100)
    args = ["exo-mrc", "experiment=single_tier", "workload=oracle_general", f"workload.path={path}",
            "mrc.points=5", "output.progress=false"]
    ok = subprocess.run([*args, f"hydra.run.dir={tmp_path / 'ok'}"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    need = exact_curve_bytes(5000, ["lru"], "block")
    assert ok.stdout.splitlines()[0].startswith(
        f"mrc: the exact curve needs at most about {need / 1e3:.3g} kB for 5,000 references (known from the workload)"
    )
    out = tmp_path / "refused"
    r = subprocess.run([*args, "mrc.memory_budget=100kB", f"hydra.run.dir={out}"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: config key `mrc.memory_budget`") and "mrc.sample_rate=0.1" in last, last
    assert not (out / "mrc.parquet").exists()


def test_the_suggested_sampling_runs_within_the_budget(
    make_cfg: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the refusal suggests works: sampled curves hold only the sample, so the budget is not applied."""
    from exo_sim.cli.mrc import mrc_to_dir

    path = oracle_trace(tmp_path / "t.bin", 5000, 100)
    ov = ["experiment=single_tier", "workload=oracle_general", f"workload.path={path}", "mrc.memory_budget=100kB",
          "mrc.points=5", "output.progress=false"]
    with pytest.raises(ConfigError):
        mrc_to_dir(make_cfg(*ov), tmp_path / "exact")
    assert not (tmp_path / "exact" / "mrc.parquet").exists()
    result = mrc_to_dir(make_cfg(*ov, "mrc.sample_rate=0.1"), tmp_path / "sampled")
    assert (tmp_path / "sampled" / "mrc.parquet").exists()
    assert set(result.frame["sample_rate"]) != {1.0}
    assert "the exact curve needs" not in capsys.readouterr().out
