"""What operators get wrong today (DESIGN.md), checked for the plan's configuration.

* **Bytes per token**: per codec, from the exact block bytes (KV heads, scales); per tensor-parallel
  rank and per node.
* **What each lower tier buys**: its share of reads against its size; under write-through a last tier
  no larger than the tiers above it is flagged (it holds copies of what they hold).
* **Does a hit pay off**: per tier, the prompt length above which loading its blocks over the links
  beats recomputing them. Loading ``n`` blocks found in tier ``i`` costs the links' latencies once
  plus ``n x (bytes / bandwidth summed over the links + codec time)``; recomputing costs ``n x
  block_tokens / prefill rate``. Loading wins above ``n* = latencies / (recompute - load) per block``
  blocks, and never when a block loads slower than it recomputes. A prompt shorter than one block
  caches nothing, so the answer is at least one block.
* **Start-up**: pinning a page-locked tier at an assumed ``cudaHostRegister`` speed.
* **Headroom under bursts**: the peak live context against the hierarchy, and each tier's peak
  occupancy in the timed run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import simpy

from exo_sim.codecs import CODECS
from exo_sim.sim.links import Fabric
from exo_sim.sim.settings import SimSettings
from exo_sim.spec import Spec
from experiments.planning.capacity import CapacityReport


@dataclass(frozen=True)
class BytesPerToken:
    """One codec's exact cost of a token of the payload."""

    codec: str
    per_rank: float
    per_node: float
    scale_share: float
    vs_fp32: float
    top_tier_gain_vs_fp16: float


def bytes_per_token(cap: CapacityReport) -> list[BytesPerToken]:
    """Per codec: bytes per token per rank and per node, the scales' share, and the real capacity gain."""
    top = cap.top
    out = []
    for c in CODECS:
        fp16_tokens = top.tokens["fp16"]
        out.append(
            BytesPerToken(
                codec=c,
                per_rank=cap.bytes_per_token[c],
                per_node=cap.bytes_per_token[c] * cap.tensor_parallel,
                scale_share=cap.scale_share[c],
                vs_fp32=cap.bytes_per_token[c] / cap.bytes_per_token["fp32"],
                top_tier_gain_vs_fp16=top.tokens[c] / fp16_tokens if fp16_tokens else math.nan,
            )
        )
    return out


@dataclass(frozen=True)
class TierShare:
    """What one tier bought in a run: its hits as a share of all reads, against its size."""

    tier: str
    capacity_tokens: int
    size_vs_above: float | None
    hits: int
    share_of_reads: float
    cumulative_hit_ratio: float
    flag: str


def tier_shares(summary: dict[str, Any], mode: str, negligible: float = 0.005) -> list[TierShare]:
    """Each tier's share of reads (from a run's summary) and the flags of the DESIGN checklist.

    A tier below the top serving under ``negligible`` of reads is flagged as adding almost nothing at
    this phase; under write-through a last tier no larger than the tiers above it together is flagged.
    """
    tiers = summary["tiers"]
    reads = int(tiers[0]["hits"]) + int(tiers[0]["misses"])
    out = []
    cum = 0
    for i, t in enumerate(tiers):
        cum += int(t["hits"])
        above = sum(int(x["capacity_tokens"]) for x in tiers[:i])
        flag = ""
        if mode == "write_through" and i == len(tiers) - 1 and i > 0 and t["capacity_tokens"] <= above:
            flag = (
                "write-through into a tier no larger than the tiers above it: it holds copies of what they "
                "hold and adds almost no hits"
            )
        elif i > 0 and reads and int(t["hits"]) / reads < negligible:
            flag = f"serves under {100 * negligible:g} % of reads at this phase"
        out.append(
            TierShare(
                tier=str(t["name"]),
                capacity_tokens=int(t["capacity_tokens"]),
                size_vs_above=(int(t["capacity_tokens"]) / int(tiers[i - 1]["capacity_tokens"]))
                if i and int(tiers[i - 1]["capacity_tokens"])
                else None,
                hits=int(t["hits"]),
                share_of_reads=int(t["hits"]) / reads if reads else 0.0,
                cumulative_hit_ratio=cum / reads if reads else 0.0,
                flag=flag,
            )
        )
    return out


@dataclass(frozen=True)
class BreakEven:
    """Load-versus-recompute for blocks found in one tier."""

    tier: str
    links: str
    latency_s: float
    load_s_per_block: float
    recompute_s_per_block: float
    breakeven_tokens: int | None  # None: loading never beats recomputing


def break_even(spec: Spec, settings: SimSettings) -> list[BreakEven]:
    """Per tier below the top: the prompt length above which loading beats recomputing (module docstring).

    Uses the timed model's costs: the links' latency and bandwidth along the route to the top (each
    link carries the block in its source tier's codec), the profile's codec throughputs when the
    codec changes, and ``sim.prefill_tokens_per_s`` for the recompute.
    """
    fabric = Fabric(simpy.Environment(), spec)
    usable = [t for t in spec.tiers if t.usable]
    top = usable[0]
    recompute = spec.block_tokens / settings.prefill_tokens_per_s
    tp = spec.codec_throughput_bytes_per_s
    work = 4 * spec.content.elements
    out = []
    for t in usable[1:]:
        route = fabric.route(t.index, top.index) or ()
        latency = sum(link.latency_s for link in route)
        load = sum(t.block_bytes / link.bandwidth_bytes_per_s for link in route)
        if t.codec != top.codec and t.codec in tp and top.codec in tp and work:
            load += work / tp[t.codec][1] + work / tp[top.codec][0]
        saving = recompute - load
        if saving <= 0:
            tokens = None
        else:
            blocks = max(1, math.ceil(latency / saving))
            tokens = blocks * spec.block_tokens
        out.append(
            BreakEven(
                tier=t.name,
                links=" -> ".join(link.name for link in route) or "(none)",
                latency_s=latency,
                load_s_per_block=load,
                recompute_s_per_block=recompute,
                breakeven_tokens=tokens,
            )
        )
    return out


@dataclass(frozen=True)
class Pinning:
    """Start-up time of pinning one page-locked tier, at the assumed speed range."""

    tier: str
    capacity_bytes: int
    fastest_s: float
    slowest_s: float


def pinning(spec: Spec, gbps: tuple[float, float]) -> list[Pinning]:
    """Every ``pinned`` tier's pinning time at ``gbps`` (low, high) GB/s of ``cudaHostRegister``."""
    low, high = gbps
    return [
        Pinning(t.name, t.capacity_bytes, t.capacity_bytes / (high * 1e9), t.capacity_bytes / (low * 1e9))
        for t in spec.tiers
        if t.medium == "pinned"
    ]


@dataclass(frozen=True)
class Headroom:
    """Room left under bursts: the live context's peak against the hierarchy, and the tiers' peaks."""

    mean_slot_tokens: float
    peak_slot_tokens: int
    capacity_tokens: int
    tier_peak_occupancy: dict[str, float]
    max_in_system: int | None

    @property
    def headroom_tokens(self) -> int:
        """Tokens the hierarchy still holds at the live context's peak (negative: short)."""
        return self.capacity_tokens - self.peak_slot_tokens

    @property
    def burst_factor(self) -> float:
        """Peak over mean live context."""
        return self.peak_slot_tokens / self.mean_slot_tokens if self.mean_slot_tokens else math.nan
