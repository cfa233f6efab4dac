"""exo-replay end to end through its console script: the reviewer's libCacheSim check, multirun, bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from exo_sim.policies import policy_names
from tests.conftest import trace_path

LCS_CLASSES = {
    "lru": "LRU",
    "fifo": "FIFO",
    "lfu": "LFU",
    "s3fifo": "S3FIFO",
    "sieve": "Sieve",
    "arc": "ARC",
    "belady": "Belady",
}


def exo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["exo-replay", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def lcs_misses(path: Path, policy: str, capacity: int) -> tuple[int, int]:
    lcs = pytest.importorskip("libcachesim", reason="libcachesim (dev extra) is not installed")
    params = lcs.ReaderInitParam()
    params.ignore_obj_size = True
    reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE, params)
    n = reader.n_total_req
    miss_ratio, _ = getattr(lcs, LCS_CLASSES[policy])(capacity).process_trace(reader)
    return round(miss_ratio * n), n


def write_zipf_oracle(path: Path, n: int = 60_000, objects: int = 5_000, seed: int = 7) -> None:
    """A seeded Zipf(1.0) trace as a libCacheSim oracleGeneral file (next-access vtimes filled in)."""
    rng = np.random.default_rng(seed)
    w = 1.0 / np.arange(1, objects + 1)
    ids = rng.choice(objects, size=n, p=w / w.sum()).astype(np.uint64) + 1
    nxt = np.full(n, -1, dtype=np.int64)
    last: dict[int, int] = {}
    for i in range(n - 1, -1, -1):
        k = int(ids[i])
        nxt[i] = last.get(k, -1)
        last[k] = i
    rec = np.zeros(n, dtype=[("ts", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
    rec["ts"] = np.arange(n)
    rec["id"] = ids
    rec["size"] = 4096
    rec["next"] = nxt
    rec.tofile(path)


def test_every_policy_is_checked() -> None:
    assert sorted(LCS_CLASSES) == policy_names()


@pytest.mark.parametrize("policy", sorted(LCS_CLASSES))
def test_single_tier_matches_libcachesim(policy: str, tmp_path: Path) -> None:
    cloud = trace_path("libcachesim/cloudPhysicsIO.oracleGeneral.bin")
    zipf = tmp_path / "zipf.oracleGeneral.bin"
    write_zipf_oracle(zipf)
    for path, capacity in [(cloud, 100), (cloud, 4000), (zipf, 50), (zipf, 800)]:
        out = tmp_path / f"run-{path.stem}-{capacity}"
        r = exo(
            "experiment=single_tier",
            f"capacity_blocks={capacity}",
            f"policy={policy}",
            "workload=oracle_general",
            f"workload.path={path}",
            f"hydra.run.dir={out}",
            cwd=tmp_path,
        )
        assert r.returncode == 0, r.stderr
        tier = json.loads((out / "summary.json").read_text())["tiers"][0]
        misses, n = lcs_misses(path, policy, capacity)
        assert (tier["misses"], tier["hits"] + tier["misses"]) == (misses, n), (path.name, capacity)


def test_default_run_writes_results(tmp_path: Path) -> None:
    # the default profile and payload, with int4 weights: bf16 ones do not fit the 8 GiB vram
    r = exo("workload.accesses=20000", "payload.weight_dtype=int4", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["source"] == "replay" and s["complete"] and s["accesses"] == 20000
    assert [t["name"] for t in s["tiers"]] == ["vram", "shared", "ram", "nvme"]
    # 8 GiB x 0.9 - 5,727,854,592 B weights - 341,049,344 B workspace = 1,662,037,196 B of KV:
    # 97 int8 blocks of 17,039,360 B (test_capacity_server.py), not the whole device's 504
    assert s["tiers"][0]["capacity_tokens"] == 97 * 256
    assert (s["tiers"][0]["capacity_bytes"], s["tiers"][0]["kv_budget_bytes"]) == (8 * 2**30, 1_662_037_196)
    assert (s["tiers"][0]["weight_bytes"], s["tiers"][0]["workspace_bytes"]) == (5_727_854_592, 341_049_344)
    assert s["tiers"][1]["kv_budget_bytes"] is None and s["tiers"][1]["weight_bytes"] == 0
    ts = pd.read_parquet(tmp_path / "run" / "timeseries.parquet")
    assert set(ts["tier"]) == {"vram", "shared", "ram", "nvme"}
    assert ts["access_index"].max() == 20000
    assert (ts["occupancy"] <= 1.0).all()


def test_multirun_sweep(tmp_path: Path) -> None:
    r = exo(
        "-m",
        "policy=lru,fifo",
        "hardware=ci_small",
        "workload.accesses=5000",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    summaries = sorted((tmp_path / "sweep").glob("*/summary.json"))
    assert len(summaries) == 2
    policies = {json.loads(p.read_text())["tiers"][0]["policy"] for p in summaries}
    assert policies == {"lru", "fifo"}
    # each job's line names its policy and codec mix (the config's, read back from its summary)
    for p in summaries:
        s = json.loads(p.read_text())
        line = f"replay ci_small/{s['config']['policy']['name']}/{s['config']['codec']['name']}: 5000 accesses"
        assert line in r.stdout, r.stdout[-2000:]
    # gathered; a replay has no clock, so no TTFT figure (not an empty one)
    sweep = tmp_path / "sweep"
    assert (sweep / "sweep.parquet").is_file() and (sweep / "hit_ratio.png").is_file()
    assert (sweep / "occupancy.png").is_file() and not (sweep / "p99_latency.png").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["policy.default=mru"], "`policy.default` (command-line override `policy.default=mru`) is 'mru'"),
        (["codec.default=fp8"], "`codec.default` (command-line override `codec.default=fp8`) is 'fp8'"),
        (["hardware.tiers.2.medium=tape"], "`hardware.tiers[2].medium`"),
        (["hardware.tiers.0.capacity_bytes=0"], "`hardware.tiers[0].capacity_bytes`"),
        (["hierarchy.low_watermark=0.9", "hierarchy.high_watermark=0.8"], "0 < low <= high <= 1"),
        (["payload.kind=weights"], "`payload.kind`"),
        (["hierarchy=pressure", "hierarchy.high_watermark=2"], "`hierarchy.high_watermark`"),
        (["hardware=ci_small", "workload=oracle_general", "workload.path=/nonexistent/x.bin"],
         "trace /nonexistent/x.bin: no such file"),
    ],
)
def test_bad_input_one_sentence(args: list[str], fragment: str, tmp_path: Path) -> None:
    r = exo(*args, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "run" / "summary.json").exists()


def test_yaml_origin_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "conf"
    r = exo("hardware=single_tier", "capacity_blocks=-3", f"hydra.run.dir={bad}", cwd=tmp_path)
    assert r.returncode == 2
    assert "`hardware.tiers[0].capacity_blocks` (conf/hardware/single_tier.yaml line" in r.stderr


def test_unknown_policy_option_is_refused(tmp_path: Path) -> None:
    r = exo("policy=mru", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert lines == ["error: unknown policy 'mru' (did you mean 'lru'?); the choices are: arc, belady, fifo, lfu, lru, s3fifo, seed, sieve."]


def test_truncated_trace_names_the_record(tmp_path: Path) -> None:
    bad = tmp_path / "short.bin"
    bad.write_bytes(b"\0" * (24 * 3 + 5))
    r = exo("hardware=ci_small", "workload=oracle_general", f"workload.path={bad}", f"hydra.run.dir={tmp_path / 'run'}",
            cwd=tmp_path)
    assert r.returncode == 2
    assert f"trace {bad} record 4: size 77 bytes is not a multiple of the 24-byte" in r.stderr
    assert not (tmp_path / "run" / "summary.json").exists()
