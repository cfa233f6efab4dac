"""What operators get wrong today (DESIGN.md), checked for the plan's configuration.

* **Bytes per token**: per codec, from the exact block bytes (KV heads, scales); per tensor-parallel
  rank and per node.
* **What each lower tier buys**: its share of reads against its size; under write-through a last tier
  no larger than the tiers above it is flagged (it holds copies of what they hold); an exclusive tier
  none of whose blocks was read again is flagged as such (:func:`never_read_again`), with the tiers
  above it that served every hit.
* **Does a hit pay off**: per tier, the cached prefix length above which loading it over the links
  beats recomputing it, with the profile's prefill cost (:mod:`exo_sim.compute`). A request of ``n``
  new tokens whose ``p``-token prefix lies in tier ``i`` either loads the prefix (the links'
  latencies once plus ``p / block_tokens x (bytes / bandwidth over the route + codec time)``) and
  prefills ``n`` tokens after it, ``prefill_s(n, p)``, or prefills everything, ``prefill_s(n + p, 0)``.
  Without overlap, loading wins when its time is under ``prefill_s(n + p, 0) - prefill_s(n, p)``
  (``= (b - d) p + c p^2 / 2`` for the model's terms: attention makes recompute superlinear in ``p``,
  and ``n`` cancels); under ``layerwise`` overlap the pair takes ``max + min / layers`` as in the
  timed model. Solved over every whole-block prefix up to a horizon: loading wins from the answer on,
  or never within it.
* **Start-up**: pinning a page-locked tier at an assumed ``cudaHostRegister`` speed.
* **Headroom under bursts**: the peak live context against the hierarchy, and each tier's peak
  occupancy in the timed run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
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


def never_read_again(tiers: list[dict[str, Any]], i: int, mode: str) -> bool:
    """Whether no block that entered tier ``i`` (of a run's summary ``tiers``) was read again in the run.

    In an exclusive hierarchy a block leaves tiers ``i`` and below only when it is read (a hit, or
    stranded: resident past the break of its request's prefix) or dropped. With no hit, none stranded
    and none dropped at ``i`` or below, every block written into ``i`` stayed there or below, unread,
    to the end; so no capacity of tier ``i`` changes a hit (exact for workloads whose writes are new
    blocks, as every shipped generator and trace reader writes). False where a count is missing, the
    tier is bypassed, nothing entered it, or the hierarchy is write-through (whose last tier holds
    copies of blocks read above it).
    """
    if mode != "exclusive" or i == 0 or tiers[i].get("bypassed"):
        return False
    if int(tiers[i].get("writes") or 0) <= 0:
        return False
    for t in tiers[i:]:
        for key in ("hits", "stranded", "drops"):
            if t.get(key) is None or int(t[key]) != 0:
                return False
    return True


def tier_shares(summary: dict[str, Any], mode: str, negligible: float = 0.005) -> list[TierShare]:
    """Each tier's share of reads (from a run's summary) and the flags of the DESIGN checklist.

    A tier below the top serving under ``negligible`` of reads is flagged as adding almost nothing at
    this phase, and where :func:`never_read_again` holds the flag says so, naming the blocks the tiers
    above it hold (they served every hit); under write-through a last tier no larger than the tiers
    above it together is flagged.
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
        elif never_read_again(tiers, i, mode):
            names = ", ".join(str(x["name"]) for x in tiers[:i])
            held = sum(int(x.get("capacity_blocks") or 0) for x in tiers[:i])
            flag = (
                f"none of the {int(t['writes']):,} blocks written into it was read again (no hit, none stranded "
                f"or dropped here or below): the tiers above ({names}: {held:,} blocks) served every hit, so no "
                "size of it changes a hit at this phase"
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


BREAK_EVEN_HORIZON_TOKENS = 2_097_152
"""How long a cached prefix :func:`break_even` considers (2M tokens): "never" means not within it."""


@dataclass(frozen=True)
class TierPrefix:
    """Where a run's cached prefixes were found: one tier's hit tokens against all prompt tokens."""

    tier: str
    hit_tokens: int
    hit_ratio_tokens: float  # hit tokens in this tier / prompt tokens of the served requests
    stranded_blocks: int  # resident here, past the break of their request's prefix (not usable)


def prefix_by_tier(summary: dict[str, Any]) -> list[TierPrefix]:
    """Per tier of a run's ``summary.json``: prefix hit tokens over prompt tokens, and stranded blocks."""
    prompt = int(summary.get("prompt_tokens") or 0)
    by_tier = summary.get("hit_tokens_by_tier") or {}
    out = []
    for t in summary["tiers"]:
        hit = int(by_tier.get(t["name"], 0) or 0)
        out.append(TierPrefix(str(t["name"]), hit, hit / prompt if prompt else 0.0, int(t.get("stranded") or 0)))
    return out


@dataclass(frozen=True)
class BreakEven:
    """Load-versus-recompute for a cached prefix found in one tier (times in seconds)."""

    tier: str
    links: str
    latency_s: float  # the route's latencies, paid once per load
    load_s_per_block: float  # bytes over the route (+ codec time when the codec changes), per block
    recompute_s_one_block: float  # prefill_s(n + B, 0) - prefill_s(n, B): recomputing a one-block prefix
    breakeven_tokens: int | None  # loading wins for every prefix from here on; None: never within the horizon
    new_tokens: int  # n, the request's tokens after the prefix
    horizon_tokens: int
    load_s_at_breakeven: float | None = None
    recompute_s_at_breakeven: float | None = None


def _route_costs(spec: Spec, settings: SimSettings) -> list[tuple[Any, str, float, float]]:
    """Per usable tier below the top: ``(tier, route, latency_s, load_s_per_block)`` up to the top tier."""
    fabric = Fabric(simpy.Environment(), spec)
    usable = [t for t in spec.tiers if t.usable]
    top = usable[0]
    tp = spec.codec_throughput_bytes_per_s
    work = 4 * spec.content.elements
    out = []
    for t in usable[1:]:
        route = fabric.route(t.index, top.index) or ()
        latency = sum(link.latency_s for link in route)
        per_link = [t.block_bytes / link.bandwidth_bytes_per_s for link in route]
        # store-and-forward crosses the links one after the other; a pipeline holds them all at once
        load = (max(per_link) if settings.pipeline else sum(per_link)) if per_link else 0.0
        if t.codec != top.codec and t.codec in tp and top.codec in tp and work:
            load += work / tp[t.codec][1] + work / tp[top.codec][0]
        out.append((t, " -> ".join(link.name for link in route) or "(none)", latency, load))
    return out


def break_even(
    spec: Spec,
    settings: SimSettings,
    new_tokens: int | None = None,
    horizon_tokens: int = BREAK_EVEN_HORIZON_TOKENS,
) -> list[BreakEven]:
    """Per tier below the top: the cached prefix length from which loading beats recomputing it.

    Uses the timed model's costs (module docstring): the links' latency and bandwidth along the route
    to the top (each link carries the block in its source tier's codec; ``sim.multi_hop`` decides
    whether the links add or pipeline), the profile's codec throughputs when the codec changes, and
    ``settings.prefill_cost`` with ``settings.layerwise`` / ``settings.layers`` for the prefill.

    Args:
        spec: the resolved hierarchy.
        settings: the timed model's settings, with the prefill cost bound
            (:func:`exo_sim.sim.settings.with_compute`).
        new_tokens: ``n``, the request's tokens after its prefix (default: one block; at least 1, as
            a fully cached prompt still recomputes its last token).
        horizon_tokens: the longest prefix considered.
    """
    bt = spec.block_tokens
    n = max(1, int(new_tokens if new_tokens is not None else bt))
    cost = settings.prefill_cost
    k = np.arange(1, max(1, horizon_tokens // bt) + 1, dtype=np.float64)
    p = k * bt
    with_prefix = np.asarray(cost.seconds(n, p), dtype=np.float64)  # prefill n tokens after the loaded prefix
    without = np.asarray(cost.seconds(n + p, 0), dtype=np.float64)  # prefill the prefix and the n tokens
    out = []
    for t, links, latency, load_per_block in _route_costs(spec, settings):
        load = latency + k * load_per_block
        if settings.layerwise:
            total = np.maximum(load, with_prefix) + np.minimum(load, with_prefix) / max(1, settings.layers)
        else:
            total = load + with_prefix
        wins = total < without
        tokens = None
        at: int | None = None
        if wins[-1]:
            losing = np.flatnonzero(~wins)
            at = int(losing[-1]) + 1 if len(losing) else 0
            tokens = int(p[at])
        out.append(
            BreakEven(
                tier=t.name,
                links=links,
                latency_s=latency,
                load_s_per_block=load_per_block,
                recompute_s_one_block=float(without[0] - with_prefix[0]),
                breakeven_tokens=tokens,
                new_tokens=n,
                horizon_tokens=int(p[-1]),
                load_s_at_breakeven=None if at is None else float(load[at]),
                recompute_s_at_breakeven=None if at is None else float(without[at] - with_prefix[at]),
            )
        )
    return out


def typical_new_tokens(requests: Any, block_tokens: int) -> int:
    """``n`` for :func:`break_even`: the median tokens a served request prefilled in a timed run.

    ``requests`` is the run's ``requests.parquet`` (``prefill_tokens``, ``refused``); one block when
    no request was served or none prefilled anything.
    """
    served = requests[~requests["refused"].astype(bool)] if "refused" in requests else requests
    if not len(served):
        return block_tokens
    n = int(np.median(served["prefill_tokens"]))
    return n if n > 0 else block_tokens


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
