"""exo-replay's prefix reuse on the Mooncake traces against vLLM 0.33.0's own KV cache manager.

The numbers below are external: exo did not produce them. They come from vLLM's KVCacheManager (prefix caching
on, one full-attention group, 512-token blocks, vLLM's own sha256 chained block hashes, watermark 0, a pool of
N usable blocks plus vLLM's null block), driven one request at a time in trace order by
experiments/vllm_reference.py under a separate venv holding vLLM (its docstring gives the setup):

    /work/vllm-venv/bin/python experiments/vllm_reference.py \
        --traces ../shared/traces/mooncake/conversation_trace.jsonl \
        --capacities 200 400 1000 4000 16000 64000 --out conversation.json
    /work/vllm-venv/bin/python experiments/vllm_reference.py \
        --traces ../shared/traces/mooncake/synthetic_trace.jsonl \
        --capacities 380 1000 4000 16000 --out synthetic.json

vllm 0.33.0 (wheel vllm-0.33.0-cp38-abi3-manylinux_2_28_x86_64), torch 2.13.0+cpu, Python 3.11.7, run on
2026-12-01 (48 s and 23 s on 2 cores). hits = the admitted requests' prefix-cache hit blocks
(num_computed_tokens / 512), evictions = blocks that still held a prefix-cache hash when vLLM's BlockPool handed
them out again, refused = requests for which allocate_slots returned None (more blocks than the pool has).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import trace_path
from tests.test_replay_cli import exo

CONVERSATION = "mooncake/conversation_trace.jsonl"
SYNTHETIC = "mooncake/synthetic_trace.jsonl"

# (trace, N usable blocks) -> (hits, evictions, refused), from vLLM 0.33.0 as above.
VLLM_0_33_0: dict[tuple[str, int], tuple[int, int, int]] = {
    (CONVERSATION, 200): (12022, 250661, 60),  # below the largest request (247 blocks): 60 refused
    (CONVERSATION, 400): (12157, 263935, 0),
    (CONVERSATION, 1000): (12988, 262504, 0),
    (CONVERSATION, 4000): (26000, 246492, 0),
    (CONVERSATION, 16000): (77276, 183216, 0),
    (CONVERSATION, 64000): (103775, 108717, 0),
    (SYNTHETIC, 380): (4168, 113341, 0),  # just above its largest request (374 blocks)
    (SYNTHETIC, 1000): (10366, 106523, 0),
    (SYNTHETIC, 4000): (30208, 83681, 0),
    (SYNTHETIC, 16000): (65390, 36499, 0),
}


@pytest.mark.parametrize(("trace", "capacity"), sorted(VLLM_0_33_0), ids=lambda x: str(x).split("/")[-1])
def test_single_tier_lru_matches_vllm(trace: str, capacity: int, tmp_path: Path) -> None:
    path = trace_path(trace)
    out = tmp_path / "run"
    r = exo(
        "experiment=single_tier",
        f"capacity_blocks={capacity}",
        "policy=lru",
        "workload=mooncake",
        f"workload.path={path}",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    tier = summary["tiers"][0]
    hits, evictions, refused = VLLM_0_33_0[(trace, capacity)]
    got = {"hits": tier["hits"], "evictions": tier["evictions"], "requests_refused": summary["requests_refused"]}
    assert got == {"hits": hits, "evictions": evictions, "requests_refused": refused}
