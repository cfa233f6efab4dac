"""Tiny hand-sized configs for the timed model's tests, built through the real schema and build_spec.

Every block is 2,048 elements (1 layer x 1 KV head x head_dim 64 x 2 (K, V) x 16 tokens): 4,096
bytes in fp16, 8,192 in fp32, 2,080 in int8 (16 groups of 128, each with a 2-byte scale); a payload
of ``layers`` layers multiplies that. Link speeds are given in bytes/s and latencies in seconds so
that tests can do the arithmetic by hand. The prefill cost is flat, ``sim.prefill_tokens_per_s`` = 16
tokens/s (one 16-token block a second), unless ``prefill`` gives fitted coefficients ``(a, b, c, d)``.
Requests reuse blocks one by one (``block``) unless ``simulate`` is told ``reuse="prefix"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from exo_sim.config import (
    CodecMixConfig,
    CodecThroughputConfig,
    ComputeConfig,
    EngineConfig,
    ExoConfig,
    HardwareConfig,
    HierarchyConfig,
    LinkConfig,
    PayloadConfig,
    PolicyMixConfig,
    PrefillCoefficientsConfig,
    SimConfig,
    TierConfig,
)
from exo_sim.sim.arrivals import arrival_process
from exo_sim.sim.model import TimedModel
from exo_sim.sim.settings import SimSettings, sim_settings, with_compute
from exo_sim.spec import build_spec
from exo_sim.workloads.base import RequestChunk

BLOCK_TOKENS = 16
FP16_BYTES = 4096
FP32_BYTES = 8192
INT8_BYTES = 2048 + 16 * 2
ELEMENTS = 2048


def link(src: str, dst: str, bytes_per_s: float, latency_s: float, channels: int = 1, duplex: bool = True
         ) -> LinkConfig:
    """A link given in bytes/s and seconds."""
    return LinkConfig(src=src, dst=dst, bandwidth_gbps=bytes_per_s / 1e9, latency_us=latency_s * 1e6,
                      channels=channels, duplex=duplex)


def make_cfg(
    capacity_blocks: Sequence[int],
    links: Sequence[LinkConfig],
    codecs: Sequence[str] | None = None,
    throughput: dict[str, tuple[float, float]] | None = None,
    mode: str = "exclusive",
    layers: int = 1,
    prefill: tuple[float, float, float, float] | None = None,
    engine: EngineConfig | None = None,
    **sim: Any,
) -> Any:
    """A root config of tiers t0..tn (LRU everywhere); ``throughput``: codec -> (encode, decode) bytes/s;
    ``prefill``: fitted prefill coefficients ``(a_s, b_s_per_token, c_s_per_token_pair, d_s_per_token)``."""
    fitted = PrefillCoefficientsConfig()
    if prefill is not None:
        a, b, c, d = prefill
        fitted = PrefillCoefficientsConfig(a_s=a, b_s_per_token=b, c_s_per_token_pair=c, d_s_per_token=d)
    names = [f"t{i}" for i in range(len(capacity_blocks))]
    cfg = ExoConfig(
        hardware=HardwareConfig(
            name="tiny",
            tiers=[TierConfig(name=n, medium="ram", capacity_blocks=c) for n, c in zip(names, capacity_blocks, strict=True)],
            links=list(links),
            codec_throughput={
                c: CodecThroughputConfig(encode_gbps=e / 1e9, decode_gbps=d / 1e9) for c, (e, d) in (throughput or {}).items()
            },
            compute=ComputeConfig(prefill=fitted),
            engine=engine or EngineConfig(),
        ),
        payload=PayloadConfig(name="tiny", kind="kv_cache", layers=layers, kv_heads=1, head_dim=64),
        codec=CodecMixConfig(name="mix", default="fp16",
                             per_tier=dict(zip(names, codecs, strict=True)) if codecs else {}),
        policy=PolicyMixConfig(name="lru", default="lru"),
        hierarchy=HierarchyConfig(mode=mode),
        workload={"kind": "none"},
        block_tokens=BLOCK_TOKENS,
        sim=SimConfig(**{"prefill_tokens_per_s": 16.0, **sim}),  # default: one block recomputed a second
    )
    return OmegaConf.structured(cfg)


def chunk(requests: Sequence[tuple[float, Sequence[int]]]) -> RequestChunk:
    """One chunk of requests given as (arrival_s, blocks read)."""
    blocks = [b for _, bs in requests for b in bs]
    offsets = np.cumsum([0] + [len(bs) for _, bs in requests])
    return RequestChunk(
        arrival_s=np.array([t for t, _ in requests], dtype=np.float64),
        offsets=offsets.astype(np.int64),
        blocks=np.array(blocks, dtype=np.int64),
        writes=np.zeros(len(blocks), dtype=bool),
        tokens=np.full(len(blocks), BLOCK_TOKENS, dtype=np.int64),
    )


def settings_of(cfg: Any) -> SimSettings:
    """``cfg.sim`` resolved with the hardware's prefill cost and the payload's layers, as ``run_sim`` does."""
    return with_compute(sim_settings(cfg.sim), cfg)


def simulate(
    cfg: Any,
    requests: Sequence[tuple[float, Sequence[int]]],
    seed: int = 0,
    *,
    reuse: str = "block",
    preload: Mapping[int, Sequence[int]] | None = None,
) -> TimedModel:
    """Run ``requests`` through the timed model of ``cfg`` with its log on; return the model.

    ``preload``: tier index -> blocks placed there before the first request (nothing counted).
    """
    spec = replace(build_spec(cfg), reuse=reuse)
    settings = settings_of(cfg)
    model = TimedModel(spec, settings, keep_log=True)
    for tier, blocks in (preload or {}).items():
        assert model.h.preload(tier, blocks) == []
    model.run(iter([chunk(requests)]), arrival_process(settings, seed).start)
    return model


def timeline(model: TimedModel) -> list[tuple[float, float, str, str]]:
    """The model's job log, sorted: (start_s, end_s, server, request)."""
    assert model.log is not None
    return sorted(model.log)


def latencies(model: TimedModel) -> list[float]:
    """Each request's time to first token, in request order."""
    return column(model, "ttft_s")


def column(model: TimedModel, name: str) -> list[float]:
    """One per-request column (``queue_s``, ``load_s``, ...) as floats, in request order."""
    cols, _ = model.request_columns()
    return [float(x) for x in cols[name]]
