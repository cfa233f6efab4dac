"""``exo-run`` and ``exo-calibrate`` end to end, through their console entry points."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import yaml

from tests.conftest import trace_path
from tests.runtime_overrides import SMALL, cli, tiers

COUNTS = ("hits", "misses", "promotions", "demotions", "evictions", "drops", "writes",
          "final_occupancy_blocks", "peak_occupancy_blocks", "mean_occupancy_blocks")


def test_exo_run_on_the_mooncake_trace_equals_exo_replay(tmp_path: Path) -> None:
    """The whole Mooncake conversation trace (288,500 block references) on ci_cpu's real memories.

    512-token blocks of retrieval chunks (two 1024-character chunks and their MiniLM embeddings);
    tiers of 500 / 2,000 / 10,000 blocks. Its decisions must be exo-replay's, count for count.
    """
    trace = trace_path("mooncake/conversation_trace.jsonl")
    common = [
        "hardware=ci_cpu",
        "payload=rag_chunk_minilm",
        "block_tokens=512",
        "workload=mooncake",
        f"workload.path={trace}",
        *tiers(500, 2000, 10000),
        "output.progress=false",
        "runtime.compute=seeded",  # the whole trace's decisions and bytes; the encoder would take hours here
    ]
    t0 = time.perf_counter()
    run = cli("exo_runtime.cli.run", *common, f"hydra.run.dir={tmp_path / 'run'}", timeout=300)
    run_s = time.perf_counter() - t0
    assert run.returncode == 0, run.stderr
    replay = cli("exo_sim.cli.replay", *common, f"hydra.run.dir={tmp_path / 'replay'}")
    assert replay.returncode == 0, replay.stderr

    got = json.loads((tmp_path / "run" / "summary.json").read_text())
    want = json.loads((tmp_path / "replay" / "summary.json").read_text())
    assert got["source"] == "runtime" and want["source"] == "replay"
    assert got["accesses"] == want["accesses"] == 288_500
    assert got["requests"] == want["requests"] == 12_031
    assert got["recomputed_blocks"] == want["recomputed_blocks"]
    for g, w in zip(got["tiers"], want["tiers"], strict=True):
        assert {k: g[k] for k in COUNTS} == {k: w[k] for k in COUNTS}, g["name"]
    assert got["links"] == want["links"]
    req = pd.read_parquet(tmp_path / "run" / "requests.parquet")
    assert len(req) == 12_031 and int(req["blocks_read"].sum()) == 288_500
    assert (tmp_path / "run" / "telemetry.parquet").exists()
    assert got["runtime"]["integrity"]["corrupted"] == []
    print(f"exo-run on the whole Mooncake trace: {run_s:.1f} s (makespan {got['makespan_s']:.1f} s)")


def test_exo_run_prints_a_summary_line(tmp_path: Path) -> None:
    proc = cli("exo_runtime.cli.run", *SMALL, "workload.accesses=500", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("run ci_cpu/seed: 500 accesses") and "summary.json" in proc.stdout


def test_exo_calibrate_writes_a_profile_hydra_loads(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    out = conf / "hardware" / "calibrated"
    proc = cli(
        "exo_runtime.cli.calibrate",
        "hardware=ci_cpu",
        "payload=tiny_llama_kv",
        "runtime.calibrate.name=testhost",
        f"runtime.calibrate.out_dir={out}",
        "runtime.calibrate.block_sizes_bytes=[16384,262144]",
        "runtime.calibrate.bytes_per_size=2097152",
        "runtime.calibrate.repeats=1",
        "runtime.calibrate.codec_elements=65536",
        f"hydra.run.dir={tmp_path / 'cal'}",
    )
    assert proc.returncode == 0, proc.stderr
    assert "load it with hardware=calibrated/testhost" in proc.stdout
    text = (out / "testhost.yaml").read_text()
    profile = yaml.safe_load(text)
    assert profile["defaults"] == ["base_hardware", "_self_"]
    assert [(lk["src"], lk["dst"]) for lk in profile["links"]] == [("shared", "ram"), ("ram", "nvme")]
    assert all(lk["bandwidth_gbps"] > 0 and lk["latency_us"] > 0 for lk in profile["links"])
    assert sorted(profile["codec_throughput"]) == ["bf16", "fp16", "fp32", "int4", "int8"]
    assert text.count(" B: ") == 2 * 2 * 2  # 2 links x 2 directions x 2 sizes, in the comments
    prefill = profile["compute"]["prefill"]  # the engine's prefills, measured and fitted
    assert prefill["payload"] == "tiny_llama_kv" and prefill["b_s_per_token"] > 0
    assert all(prefill[k] >= 0 for k in ("a_s", "c_s_per_token_pair", "d_s_per_token"))
    assert text.count("# fit a + b*n") == 1 and "prefill (tiny_llama_kv on cpu)" in proc.stdout

    replay = cli(
        "exo_sim.cli.replay",
        "hardware=calibrated/testhost",
        f"hydra.searchpath=[file://{conf}]",
        "workload.accesses=1000",
        f"hydra.run.dir={tmp_path / 'replay'}",
    )
    assert replay.returncode == 0, replay.stderr
    loaded = json.loads((tmp_path / "replay" / "summary.json").read_text())["config"]["hardware"]
    assert loaded["name"] == "testhost"
    assert loaded["links"][0]["bandwidth_gbps"] == profile["links"][0]["bandwidth_gbps"]
