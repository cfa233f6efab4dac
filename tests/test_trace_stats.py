"""exo-trace-stats: the first facts about a workload, checked against numbers derived independently."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exo_sim.replay import prepare
from exo_sim.trace_stats import trace_stats
from tests.conftest import trace_path

# Llama-3-8B KV: 2 x 32 layers x 8 KV heads x 128 = 65,536 elements per token
ELEMENTS_PER_TOKEN = 2 * 32 * 8 * 128


def stats(make_cfg: Callable[..., Any], *overrides: str) -> Any:
    # ci_small: the seed workstation's tiers with its vram a KV pool (the default's bf16 Llama-3-8B
    # weights do not fit 8 GiB and are refused); the same block bytes
    cfg = make_cfg("hardware=ci_small", *overrides)
    spec, workload = prepare(cfg)
    return trace_stats(workload, spec, cfg.codec)


def test_mooncake_synthetic_trace_stats(make_cfg: Callable[..., Any]) -> None:
    path = trace_path("mooncake/synthetic_trace.jsonl")
    with open(path) as f:
        lines = [json.loads(line) for line in f]
    s = stats(make_cfg, "workload=mooncake", f"workload.path={path}", "block_tokens=512", "codec=fp16")
    # SOURCES.md: 3,993 requests, 121,877 block references, 43,924 distinct blocks
    assert (s.requests, s.block_refs, s.distinct_blocks) == (3_993, 121_877, 43_924)
    assert s.reads == 121_877 and s.writes == 0
    assert s.reuse_refs == 121_877 - 43_924
    assert s.reuse_fraction == pytest.approx(1 - 43_924 / 121_877)
    assert s.infinite_cache_hit_ratio == pytest.approx(1 - 43_924 / 121_877)
    assert s.tokens_referenced == sum(r["input_length"] for r in lines)
    assert s.block_bytes == ELEMENTS_PER_TOKEN * 512 * 2  # fp16
    assert s.footprint_bytes == 43_924 * ELEMENTS_PER_TOKEN * 512 * 2
    first_s, last_s = lines[0]["timestamp"] / 1000, lines[-1]["timestamp"] / 1000
    assert s.duration_s == pytest.approx(last_s - first_s)
    assert s.arrival_rate_per_s == pytest.approx((3_993 - 1) / (last_s - first_s))
    assert s.blocks_per_request_max == max(len(r["hash_ids"]) for r in lines)


def test_footprint_counts_int8_scales(make_cfg: Callable[..., Any]) -> None:
    path = trace_path("mooncake/synthetic_trace.jsonl")
    s = stats(make_cfg, "workload=mooncake", f"workload.path={path}", "block_tokens=512", "codec=int8",
              "hardware=ci_small")
    elements = ELEMENTS_PER_TOKEN * 512
    int8_block = elements + (elements // 128) * 2  # one byte per element + a 2-byte scale per 128
    assert s.block_bytes == int8_block
    assert s.footprint_bytes == 43_924 * int8_block
    assert set(s.footprint_bytes_by_tier) == {"vram", "shared", "ram", "nvme"}
    assert set(s.footprint_bytes_by_tier.values()) == {43_924 * int8_block}


def test_agent_sessions_stats_follow_from_parameters(make_cfg: Callable[..., Any]) -> None:
    S, T, x, prefix = 9, 4, 700, 600  # noqa: N806
    # 2 shared full prefix blocks (512 tokens); each stream starts with the other 88. Per session:
    # 88+700 = 788 -> 3 full blocks, tail 20; 720 -> 2, 208; 908 -> 3, 140; 840 -> 3, 72.
    P, written, reads_per_session = 2, [3, 2, 3, 3], [2, 5, 7, 10]  # noqa: N806
    s = stats(
        make_cfg, "workload=agent_sessions", f"workload.sessions={S}", "workload.concurrency=4",
        f"workload.turns_min={T}", f"workload.turns_max={T}", f"workload.turn_tokens_min={x}",
        f"workload.turn_tokens_max={x}", f"workload.prefix_tokens={prefix}",
    )
    reads = S * sum(reads_per_session)
    assert (s.requests, s.reads, s.writes) == (S * T, reads, S * sum(written))
    assert s.distinct_blocks == P + S * sum(written)
    # only the prefix's first reads find nothing: every other read re-reads a block seen before
    assert s.infinite_cache_hit_ratio == pytest.approx(1 - P / reads)
    assert s.reuse_refs == s.block_refs - s.distinct_blocks
    assert s.distinct_tokens == 256 * (P + S * sum(written))  # every block full; each stream keeps a 72-token tail


def test_azure_stats_have_no_reuse(make_cfg: Callable[..., Any]) -> None:
    path = trace_path("azure/AzureLLMInferenceTrace_conv.csv")
    s = stats(make_cfg, "workload=azure", f"workload.path={path}")
    assert s.requests == 19_366
    assert s.reuse_refs == 0 and s.infinite_cache_hit_ratio == 0.0
    assert s.distinct_blocks == s.block_refs
    assert any("no block hashes" in n for n in s.notes)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["exo-trace-stats", "hardware=ci_small", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_cli_writes_trace_stats_json(tmp_path: Path) -> None:
    path = trace_path("mooncake/synthetic_trace.jsonl")
    out = tmp_path / "stats"
    r = run("workload=mooncake", f"workload.path={path}", "block_tokens=512", f"hydra.run.dir={out}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "trace_stats.json").read_text())
    assert (data["requests"], data["block_refs"], data["distinct_blocks"]) == (3_993, 121_877, 43_924)
    assert "distinct blocks            43,924" in r.stdout


def test_cli_refuses_a_malformed_trace_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"timestamp": 0, "input_length": 10, "output_length": 1, "hash_ids": [1]}\n'
        '{"timestamp": 1, "input_length": 10, "hash_ids": [1]}\n'
    )
    out = tmp_path / "stats"
    r = run("workload=mooncake", f"workload.path={bad}", f"hydra.run.dir={out}", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == f"error: trace {bad} line 2: has no field 'output_length'."
    assert not (out / "trace_stats.json").exists()
