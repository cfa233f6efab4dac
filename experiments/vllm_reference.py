"""External reference numbers for prefix reuse: Mooncake traces through vLLM 0.33.0's own KV cache manager.

Runs under a separate virtual environment that holds vLLM (never a dependency of exo, and this script never
imports exo). Set it up once, outside the checkout, with the package index the machine already uses:

    python -m venv /work/vllm-venv
    /work/vllm-venv/bin/pip install --no-deps vllm==0.33.0
    /work/vllm-venv/bin/pip install --no-deps torch==2.13.0   # the CPU build; never an unpinned torch
    /work/vllm-venv/bin/pip install --no-deps \
        typing_extensions packaging psutil pyzmq urllib3 regex numpy msgspec pydantic pydantic-core \
        typing-inspection annotated-types sympy mpmath cbor2 "transformers>=5.16.1,<5.21.0" huggingface-hub \
        tqdm httpx2 httpcore2 idna pyyaml filelock truststore h11 "safetensors>=0.8.0" \
        "tokenizers>=0.23.2,<0.24" aiohttp multidict attrs yarl propcache aiohappyeyeballs aiosignal frozenlist \
        requests certifi openai-harmony openai sniffio anyio pillow pybase64 cachetools cloudpickle uvloop \
        py-cpuinfo networkx prometheus-client xgrammar==0.2.8 apache-tvm-ffi==0.1.11 \
        "fastapi>=0.133.0,<0.137.0" starlette annotated-doc partial-json-parser "llguidance>=1.7.0,<1.8.0"

(those are exactly what importing vllm.v1.core.{kv_cache_manager,block_pool,single_type_kv_cache_manager,
kv_cache_utils} and vllm.v1.request needs; vLLM's other dependencies are never imported here). Then, from the
checkout:

    /work/vllm-venv/bin/python experiments/vllm_reference.py \
        --traces ../shared/traces/mooncake/conversation_trace.jsonl \
        --capacities 200 400 1000 4000 16000 64000 --out conversation.json

What it drives, as vLLM's engine does with its defaults: a ``KVCacheManager`` with prefix caching on, one
full-attention KV cache group (``FullAttentionSpec``, block size 512, hash block size 512, so the
``UnitaryKVCacheCoordinator`` and ``FullAttentionManager``), a ``BlockPool`` of N+1 blocks (block 0 is vLLM's
null block, so N are usable), watermark 0, no lookahead or speculative tokens, no EAGLE, no KV connector, no
KV events. Block hashes are vLLM's own: ``init_none_hash`` and ``get_request_block_hasher`` with the default
``prefix_caching_hash_algo`` (sha256), attached to vLLM ``Request`` objects, exactly as ``EngineCore`` does.
With hash block size == block size, ``FullAttentionManager.cache_blocks`` returns before its partial-tail
caching and the unitary coordinator never uses fine-grained (partial) hits: only full blocks are cached and hit.

Each trace request (timestamp, input_length, output_length, hash_ids; one hash id per 512-token block, the last
possibly partial) becomes a prompt of input_length token ids in which block j's tokens depend on hash_ids[j]
only (first token = the hash id, the other 511 are 0), so equal hash ids give equal tokens. Requests run one
at a time in trace order: ``get_computed_blocks``, then ``allocate_slots`` for the rest of the prompt (output
tokens are ignored), then ``free`` as if the request finished. ``allocate_slots`` returning None means the
request needs more blocks than the pool has: it is counted as refused and nothing is freed.

Counted per (trace, N): hit blocks (the admitted requests' num_computed_tokens / 512, which is what vLLM's own
``PrefixCacheStats`` records at admission; refused requests' lookups are reported apart), queried blocks (the
admitted requests' trace blocks, len(hash_ids)), evictions (blocks that still held a prefix-cache hash when
``BlockPool.get_new_blocks`` handed them out again, i.e. ``BlockPool._maybe_evict_cached_block`` returned True),
refused requests, requests; also how many times a fully cached whole-block prompt put a second copy of its last
block in the cache (duplicate_cached_blocks) and how many pool blocks hold a hash at the end. One JSON object
per (trace, N) is printed and all are written to --out.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

BLOCK = 512
FILL = 0  # every token of a block but its first


def load_trace(path: Path) -> list[tuple[int, list[int]]]:
    """(input_length, hash_ids) for each request of a Mooncake JSONL trace, in file order."""
    out: list[tuple[int, list[int]]] = []
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            rec = json.loads(line)
            length, ids = int(rec["input_length"]), [int(h) for h in rec["hash_ids"]]
            if length <= 0 or len(ids) != math.ceil(length / BLOCK):
                raise SystemExit(f"{path}:{n}: {len(ids)} hash ids for input_length {length}")
            out.append((length, ids))
    return out


def prompt_tokens(length: int, hash_ids: list[int]) -> list[int]:
    """Token ids whose block j is a function of hash_ids[j] alone."""
    tail = [FILL] * (BLOCK - 1)
    tokens: list[int] = []
    for h in hash_ids:
        tokens.append(h)
        tokens.extend(tail)
    del tokens[length:]
    return tokens


class Vllm:
    """vLLM 0.33.0's classes, imported once (they are absent from exo's own environment)."""

    def __init__(self) -> None:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        # requests (pulled in by vllm's imports) warns that no charset detector is installed; none is needed.
        warnings.filterwarnings("ignore", message="Unable to find acceptable character detection")
        import torch
        import vllm
        from vllm.sampling_params import SamplingParams
        from vllm.utils.hashing import get_hash_fn_by_name
        from vllm.v1.core.block_pool import BlockPool
        from vllm.v1.core.kv_cache_manager import KVCacheManager
        from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash
        from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
        from vllm.v1.request import Request

        logging.getLogger("vllm").setLevel(logging.WARNING)
        self.version = vllm.__version__
        self.torch = torch
        self.SamplingParams = SamplingParams
        self.BlockPool = BlockPool
        self.KVCacheManager = KVCacheManager
        self.FullAttentionSpec = FullAttentionSpec
        self.KVCacheConfig = KVCacheConfig
        self.KVCacheGroupSpec = KVCacheGroupSpec
        self.Request = Request
        # EngineCore.__init__: caching_hash_fn = get_hash_fn_by_name(cache_config.prefix_caching_hash_algo),
        # init_none_hash(caching_hash_fn), get_request_block_hasher(hash_block_size, caching_hash_fn, lookahead).
        hash_fn = get_hash_fn_by_name("sha256")
        init_none_hash(hash_fn)
        self.block_hasher = get_request_block_hasher(BLOCK, hash_fn, 0)

    def manager(self, usable_blocks: int, max_model_len: int) -> Any:
        spec = self.FullAttentionSpec(block_size=BLOCK, num_kv_heads=1, head_size=1, dtype=self.torch.float16)
        config = self.KVCacheConfig(
            num_blocks=usable_blocks + 1,  # + vLLM's null block
            kv_cache_tensors=[],
            kv_cache_groups=[self.KVCacheGroupSpec(layer_names=["layer.0"], kv_cache_spec=spec)],
            prefix_cache_retention_interval=0,  # CacheConfig's default; full attention ignores it
            hash_block_size=BLOCK,
        )
        return self.KVCacheManager(
            kv_cache_config=config,
            max_model_len=max_model_len,
            scheduler_block_size=BLOCK,
            hash_block_size=BLOCK,
            enable_caching=True,
            use_eagle=False,
            num_hash_lookahead_tokens=0,
            num_prefill_lookahead=0,
            log_stats=True,
            enable_kv_cache_events=False,
            watermark=0.0,
        )

    def request(self, rid: int, tokens: list[int]) -> Any:
        return self.Request(
            request_id=str(rid),
            prompt_token_ids=tokens,
            sampling_params=self.SamplingParams(max_tokens=1),
            pooling_params=None,
            arrival_time=0.0,
            block_hasher=self.block_hasher,
        )


def replay(v: Vllm, trace: list[tuple[int, list[int]]], capacity: int) -> dict[str, Any]:
    """Run one trace through a fresh KVCacheManager with ``capacity`` usable blocks."""
    longest = max(length for length, _ in trace)
    kvm = v.manager(capacity, max_model_len=longest + BLOCK)
    pool = kvm.block_pool
    assert pool.num_gpu_blocks == capacity + 1 and pool.get_num_free_blocks() == capacity
    assert kvm.watermark_blocks == 0 and not kvm.coordinator.enable_partial_hash_hits
    assert type(kvm.coordinator).__name__ == "UnitaryKVCacheCoordinator"
    assert type(kvm.coordinator.single_type_managers[0]).__name__ == "FullAttentionManager"

    evictions = 0
    original = pool._maybe_evict_cached_block

    def counting_evict(block: Any) -> bool:
        nonlocal evictions
        evicted = bool(original(block))
        evictions += evicted
        return evicted

    pool._maybe_evict_cached_block = counting_evict

    hits = queried = refused = refused_blocks = refused_hit_blocks = duplicates = 0
    for rid, (length, hash_ids) in enumerate(trace):
        req = v.request(rid, prompt_tokens(length, hash_ids))
        assert len(req.block_hashes) == length // BLOCK  # vLLM hashes full blocks only
        computed, num_computed, _ = kvm.get_computed_blocks(req)
        assert num_computed % BLOCK == 0
        # A fully cached prompt of whole blocks still recomputes its last block (hits stop at num_tokens - 1):
        # vLLM caches that new block under the same hash beside the old copy (BlockHashToBlockMap keeps both).
        recomputes_cached_last = (
            length % BLOCK == 0
            and num_computed == length - BLOCK
            and pool.get_cached_block(req.block_hashes[-1], [0]) is not None
        )
        new = kvm.allocate_slots(
            req,
            num_new_tokens=length - num_computed,
            num_new_computed_tokens=num_computed,
            new_computed_blocks=computed,
        )
        if new is None:
            refused += 1
            refused_blocks += len(hash_ids)
            refused_hit_blocks += num_computed // BLOCK
            continue
        kvm.record_prefix_cache_stats(req, num_computed)  # as the scheduler does, at admission
        req.num_computed_tokens = length
        hits += num_computed // BLOCK
        queried += len(hash_ids)
        duplicates += recomputes_cached_last
        kvm.free(req)
        assert pool.get_num_free_blocks() == capacity

    stats = kvm.make_prefix_cache_stats()
    assert stats.hits == hits * BLOCK and stats.requests == len(trace) - refused
    return {
        "capacity_blocks": capacity,
        "requests": len(trace),
        "refused": refused,
        "hits": hits,
        "queried_blocks": queried,
        "misses": queried - hits,
        "evictions": evictions,
        "refused_blocks": refused_blocks,
        "refused_hit_blocks": refused_hit_blocks,
        "duplicate_cached_blocks": duplicates,
        "cached_blocks_at_end": sum(b.block_hash is not None for b in pool.blocks),
        "vllm_prefix_cache_stats": {"requests": stats.requests, "queries": stats.queries, "hits": stats.hits},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--traces", nargs="+", type=Path, required=True, help="Mooncake JSONL traces")
    ap.add_argument("--capacities", nargs="+", type=int, required=True, help="usable pool sizes N, in blocks")
    ap.add_argument("--out", type=Path, required=True, help="JSON file for all results")
    args = ap.parse_args(argv)
    if any(n <= 0 for n in args.capacities):
        ap.error("--capacities must be positive")

    v = Vllm()
    results: list[dict[str, Any]] = []
    for path in args.traces:
        trace = load_trace(path)
        for capacity in args.capacities:
            t0 = time.perf_counter()
            row = {"trace": path.name, "vllm": v.version, "block_size": BLOCK}
            row.update(replay(v, trace, capacity))
            row["seconds"] = round(time.perf_counter() - t0, 1)
            results.append(row)
            print(json.dumps(row), flush=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
