"""Small hand-sized hierarchies for tests, built through the real schema and build_spec."""

from __future__ import annotations

from omegaconf import OmegaConf

from exo_sim.config import (
    CodecMixConfig,
    ExoConfig,
    HardwareConfig,
    HierarchyConfig,
    PayloadConfig,
    PolicyMixConfig,
    TierConfig,
)
from exo_sim.spec import Spec, build_spec

MEDIA = ["pinned", "shm", "ram", "file"]


def small_spec(
    capacity_blocks: list[int],
    policy: str = "lru",
    mode: str = "exclusive",
    high: float = 1.0,
    low: float = 1.0,
    codecs: list[str] | None = None,
) -> Spec:
    """Tiers t0..tn of the given sizes in blocks (a tiny KV payload: 1 layer, 1 head, dim 4)."""
    names = [f"t{i}" for i in range(len(capacity_blocks))]
    cfg = ExoConfig(
        hardware=HardwareConfig(
            name="small",
            tiers=[
                TierConfig(name=n, medium=MEDIA[min(i, 3)], capacity_blocks=c)
                for i, (n, c) in enumerate(zip(names, capacity_blocks, strict=True))
            ],
        ),
        payload=PayloadConfig(name="tiny", kind="kv_cache", layers=1, kv_heads=1, head_dim=4),
        codec=CodecMixConfig(
            name="mix", default="fp16", per_tier=dict(zip(names, codecs, strict=True)) if codecs else {}
        ),
        policy=PolicyMixConfig(name=policy, default=policy),
        hierarchy=HierarchyConfig(mode=mode, high_watermark=high, low_watermark=low),
        workload={"kind": "none"},
        block_tokens=1,
    )
    return build_spec(OmegaConf.structured(cfg))
