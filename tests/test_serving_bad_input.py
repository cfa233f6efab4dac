"""Serving semantics' bad input, through the console scripts: one sentence naming the key, exit 2, no results."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import trace_path
from tests.runtime_overrides import one_error_line


def refused(cmd: str, *args: str, cwd: Path) -> str:
    out = cwd / "run"
    proc = subprocess.run([cmd, *args, f"hydra.run.dir={out}"], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert not (out / "summary.json").exists()
    return one_error_line(proc)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        # hidden 4096 over 32 heads of 128 is Llama-3-8B; 48 heads of 128 contradict it
        (["payload.attention_heads=48"], ["`payload.hidden_size`", "48 x 128 = 6144"]),
        # Llama-3-8B's KV is 131,072 B/token at 16 bits; a declared 262,144 contradicts its architecture
        (["payload.bytes_per_token=262144"], ["`payload.bytes_per_token`", "131072"]),
        (["hardware.compute.flops_efficiency=0"], ["`hardware.compute.flops_efficiency`"]),
        (["hardware.compute.peak_flops=-1"], ["`hardware.compute.peak_flops`"]),
        (["hierarchy.reuse=prefix"], ["`hierarchy.reuse`", "zipf", "not chains of blocks"]),
        (["hierarchy.reuse=prefix", "payload=rag_chunk_minilm"], ["`hierarchy.reuse`", "rag_chunk"]),
        (["hierarchy.reuse=sometimes"], ["`hierarchy.reuse`", "auto, prefix, block"]),
        (["sim.overlap=sideways"], ["`sim.overlap`", "none, layerwise"]),
    ],
)
def test_exo_sim_refuses_in_one_sentence(args: list[str], fragments: list[str], tmp_path: Path) -> None:
    line = refused("exo-sim", "hardware=ci_small", *args, cwd=tmp_path)
    for fragment in fragments:
        assert fragment in line, line


def test_weights_that_do_not_fit_are_refused_by_replay_and_sim(tmp_path: Path) -> None:
    for cmd in ("exo-replay", "exo-sim"):
        line = refused(cmd, "payload=llama3_8b_kv", cwd=tmp_path)
        assert "`hardware.tiers[0].capacity_bytes`" in line and "16.06 GB bf16 weights" in line
        assert "what would fit: weights in int4" in line


def test_prefix_reuse_on_mooncake_is_the_default_for_a_kv_cache(tmp_path: Path) -> None:
    """``auto`` resolves to prefix for a KV payload on a chained trace, and to block for RAG chunks."""
    import json

    path = trace_path("mooncake/conversation_trace.jsonl")
    for payload, reuse in (("llama3_8b_int4_kv", "prefix"), ("rag_chunk_minilm", "block")):
        out = tmp_path / payload
        proc = subprocess.run(
            ["exo-replay", f"payload={payload}", "workload=mooncake", f"workload.path={path}",
             "workload.max_requests=300", f"hydra.run.dir={out}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads((out / "summary.json").read_text())["reuse"] == reuse
