"""Each tier's real capacity in tokens for a payload under every codec, and whether a target fits.

Every figure comes from :func:`exo_sim.spec.block_bytes` (the codecs' exact byte math, scales
included) and the profile's bytes: ``blocks = capacity_bytes // block_bytes``, ``tokens = blocks x
block_tokens``; the usable part is ``floor(high_watermark x blocks)``, as the decision core counts it.
A GPU tier serving a model holds its KV budget, not its device bytes: ``blocks = kv_budget_bytes //
block_bytes`` (:mod:`exo_sim.kv_budget`: the device x utilisation, less the weights and workspace).

The hierarchy's *distinct* capacity is what it can hold at once without recomputing: the sum of its
usable tiers when exclusive; under write-through every block is also persisted to the last tier, so
the upper tiers mostly hold copies and the distinct capacity is taken as the larger of the last tier
and the sum of the tiers above it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from exo_sim.codecs import CODECS, group_size
from exo_sim.config import CodecMixConfig, HardwareConfig
from exo_sim.kv_budget import gpu_of, kv_budget
from exo_sim.payloads import block_content
from exo_sim.spec import Spec, block_bytes
from experiments.planning.options import load_option, option_names

DENSEST = min(CODECS, key=lambda c: CODECS[c].bits_per_element)
"""The codec that packs the most tokens into a byte (int4)."""


def uniform_mix(base: Any, codec: str) -> Any:
    """``base``'s codec mix (group sizes, scale bytes) with every tier in ``codec``."""
    mix = OmegaConf.merge(OmegaConf.structured(CodecMixConfig), base)
    assert isinstance(mix, DictConfig)
    mix.name, mix.default, mix.per_tier = codec, codec, {}
    return mix


@dataclass(frozen=True)
class TierCapacity:
    """One tier under every codec: exact block bytes, whole blocks and tokens, and its configured codec.

    ``kv_budget_bytes`` (a GPU tier serving a model; ``None`` otherwise) is what holds the blocks, after
    ``weight_bytes`` and ``workspace_bytes`` are taken from the device's ``capacity_bytes``.
    """

    name: str
    medium: str
    capacity_bytes: int
    codec: str
    high_fraction: float
    block_tokens: int
    block_bytes: dict[str, int]
    blocks: dict[str, int]
    tokens: dict[str, int]
    kv_budget_bytes: int | None = None
    weight_bytes: int = 0
    workspace_bytes: int = 0
    budget_arithmetic: str = ""  # the KV budget as one line of arithmetic (GPU tiers only)

    @property
    def block_room_bytes(self) -> int:
        """The bytes that hold blocks: the KV budget of a GPU tier, else the whole capacity."""
        return self.capacity_bytes if self.kv_budget_bytes is None else self.kv_budget_bytes

    def usable_tokens(self, codec: str | None = None) -> int:
        """Tokens the tier holds under its high watermark in ``codec`` (default: its configured one)."""
        c = codec or self.codec
        return math.floor(self.high_fraction * self.blocks[c] + 1e-9) * self.block_tokens

    @property
    def configured_tokens(self) -> int:
        """Tokens under the configured codec mix (whole capacity)."""
        return self.tokens[self.codec]


@dataclass(frozen=True)
class CapacityReport:
    """The capacity section's numbers for one hardware profile, payload and codec mix."""

    hardware: str
    payload: str
    mode: str
    block_tokens: int
    tensor_parallel: int
    target_tokens: int
    mix_name: str
    tiers: list[TierCapacity]
    bytes_per_token: dict[str, float]
    scale_share: dict[str, float]

    def distinct_tokens(self, codec: str | None = None) -> int:
        """Tokens the whole hierarchy holds at once (usable parts) in ``codec`` (default: the mix)."""
        usable = [t.usable_tokens(codec) for t in self.tiers]
        usable = [u for u in usable if u > 0]
        if not usable:
            return 0
        if self.mode == "write_through" and len(usable) > 1:
            return max(usable[-1], sum(usable[:-1]))
        return sum(usable)

    @property
    def top(self) -> TierCapacity:
        """The top tier."""
        return self.tiers[0]

    def fits_top(self, codec: str | None = None) -> bool:
        """Whether the top tier alone holds the target (under its watermark)."""
        return self.top.usable_tokens(codec) >= self.target_tokens

    def fits_hierarchy(self, codec: str | None = None) -> bool:
        """Whether the whole hierarchy holds the target at once."""
        return self.distinct_tokens(codec) >= self.target_tokens

    @property
    def best_distinct_tokens(self) -> int:
        """The hierarchy's distinct capacity in its densest codec."""
        return self.distinct_tokens(DENSEST)


def _arithmetic(cfg: Any, medium: str, capacity_bytes: int) -> str:
    budget = kv_budget(capacity_bytes, gpu_of(cfg.hardware), cfg.payload) if medium == "cuda" else None
    return "" if budget is None else budget.arithmetic()


def capacity_report(cfg: Any, spec: Spec, target_tokens: int) -> CapacityReport:
    """Capacities of ``spec``'s tiers for its payload under every codec (``cfg`` gives group sizes).

    Args:
        cfg: the composed root config (its codec mix's group and scale sizes, its watermarks).
        spec: the resolved hierarchy of ``cfg``.
        target_tokens: the phase's target.
    """
    content = spec.content
    mixes = {c: uniform_mix(cfg.codec, c) for c in CODECS}
    bb = {c: block_bytes(content, c, mixes[c]) for c in CODECS}
    tiers = []
    for t in spec.tiers:
        room = t.capacity_bytes if t.kv_budget_bytes is None else max(0, t.kv_budget_bytes)
        blocks = {c: room // bb[c] for c in CODECS}
        high = cfg.hardware.tiers[t.index].high_watermark
        tiers.append(
            TierCapacity(
                name=t.name,
                medium=t.medium,
                capacity_bytes=t.capacity_bytes,
                codec=t.codec,
                high_fraction=float(high if high is not None else cfg.hierarchy.high_watermark),
                block_tokens=spec.block_tokens,
                block_bytes=dict(bb),
                blocks=blocks,
                tokens={c: blocks[c] * spec.block_tokens for c in CODECS},
                kv_budget_bytes=t.kv_budget_bytes,
                weight_bytes=t.weight_bytes,
                workspace_bytes=t.workspace_bytes,
                budget_arithmetic=_arithmetic(cfg, t.medium, t.capacity_bytes) if t.kv_budget_bytes is not None else "",
            )
        )
    scale_share = {}
    for c in CODECS:
        g = group_size(c, mixes[c])
        scales = -(-content.elements // g) * int(mixes[c].scale_bytes) if g else 0
        scale_share[c] = scales / bb[c]
    return CapacityReport(
        hardware=spec.hardware,
        payload=spec.payload,
        mode=spec.mode,
        block_tokens=spec.block_tokens,
        tensor_parallel=int(cfg.payload.tensor_parallel) if cfg.payload.kind == "kv_cache" else 1,
        target_tokens=target_tokens,
        mix_name=str(cfg.codec.name),
        tiers=tiers,
        bytes_per_token={c: bb[c] / spec.block_tokens for c in CODECS},
        scale_share=scale_share,
    )


@dataclass(frozen=True)
class ProfileCapacity:
    """A hardware profile's distinct capacity for the plan's payload (exclusive, every tier used)."""

    name: str
    description: str
    tokens: dict[str, int]


def profile_capacities(cfg: Any, block_tokens: int) -> list[ProfileCapacity]:
    """Every hardware option of ``conf/hardware/`` sized in bytes, with its capacity in tokens per codec.

    Options sized in blocks (``single_tier``) are left out: they have no capacity in bytes. A GPU
    tier counts its KV budget for the plan's payload (nothing when the weights do not fit it).
    """
    content = block_content(cfg.payload, block_tokens)
    bb = {c: block_bytes(content, c, uniform_mix(cfg.codec, c)) for c in CODECS}
    out = []
    for name in option_names("hardware"):
        hw = load_option("hardware", name, HardwareConfig)
        caps = [t.capacity_bytes for t in hw.tiers]
        if not caps or any(c is None for c in caps):
            continue
        rooms = []
        for t in hw.tiers:
            budget = kv_budget(int(t.capacity_bytes), gpu_of(hw), cfg.payload) if t.medium == "cuda" else None
            rooms.append(int(t.capacity_bytes) if budget is None else max(0, budget.kv_budget_bytes))
        out.append(
            ProfileCapacity(
                name=name,
                description=str(hw.description),
                tokens={c: sum(room // bb[c] for room in rooms) * block_tokens for c in CODECS},
            )
        )
    return out
