"""The one result schema every source (``replay``, ``sim``, ``runtime``) writes, column for column.

* ``summary.json``: the resolved config and its hash; per tier capacity in bytes, blocks and tokens,
  hits, misses, promotions, demotions, evictions, drops, peak and mean occupancy; per link bytes
  moved (and, from clocked sources, busy time and utilisation); request latency percentiles and
  makespan (``null`` from the replay, which has no clock); recomputed blocks and tokens.
* ``timeseries.parquet``: occupancy per tier, long format (``access_index``, ``time_s``, ``tier``,
  ``occupancy_blocks``, ``occupancy_bytes``, ``occupancy``).
* ``requests.parquet`` (clocked sources): one row per request, :data:`REQUEST_COLUMNS` then
  ``hits_<tier>`` — its latency and where its blocks were found.

Clocked sources add to the summary (new keys only; the replay's keys keep their meaning):
``link_usage`` (per link resource: bytes, transfers, busy time, utilisation), ``latency_mean_s``,
``latency_max_s``, ``throughput_requests_per_s``, ``mean_in_system`` and their own engines' use.

Files are written to a temporary name and renamed, and ``summary.json`` last: an interrupted run
leaves no summary that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from exo_sim.hierarchy import Hierarchy
from exo_sim.spec import Spec

if TYPE_CHECKING:
    from exo_sim.driver import Totals

SCHEMA_VERSION = 1


TIER_DECISION_KEYS = (
    "hits",
    "misses",
    "promotions",
    "demotions",
    "evictions",
    "drops",
    "writes",
    "final_occupancy_blocks",
    "peak_occupancy_blocks",
    "mean_occupancy_blocks",
)
"""Per-tier summary counts that are decisions: equal for every source on the same config and workload."""


def config_hash(resolved: dict[str, Any]) -> str:
    """A short stable hash of a resolved config (sorted JSON, SHA-256, 16 hex digits)."""
    text = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class PairUsage:
    """What the copies from tier ``src`` to tier ``dst`` took: blocks, bytes and busy seconds."""

    src: str
    dst: str
    blocks: int = 0
    bytes_moved: int = 0
    busy_s: float = 0.0


@dataclass
class OccupancySeries:
    """Occupancy samples: one row per (sample, tier)."""

    access_index: list[int] = field(default_factory=list)
    time_s: list[float] = field(default_factory=list)
    used_blocks: list[list[int]] = field(default_factory=list)

    def sample(self, access_index: int, used: list[int], time_s: float = float("nan")) -> None:
        """Record the tiers' occupancy (blocks) at ``access_index`` (and ``time_s``, if clocked)."""
        self.access_index.append(access_index)
        self.time_s.append(time_s)
        self.used_blocks.append(list(used))

    def frame(self, spec: Spec) -> pd.DataFrame:
        """The long-format table written to ``timeseries.parquet``."""
        rows = []
        for idx, t, used in zip(self.access_index, self.time_s, self.used_blocks, strict=True):
            for tier in spec.tiers:
                blocks = used[tier.index]
                rows.append(
                    {
                        "access_index": idx,
                        "time_s": t,
                        "tier": tier.name,
                        "occupancy_blocks": blocks,
                        "occupancy_bytes": blocks * tier.block_bytes,
                        "occupancy": blocks / tier.capacity_blocks if tier.capacity_blocks else 0.0,
                    }
                )
        return pd.DataFrame(rows)


def tier_rows(spec: Spec, hierarchy: Hierarchy) -> list[dict[str, Any]]:
    """Per-tier summary entries: capacities (derived) and counts.

    ``capacity_bytes`` is the device's; a GPU tier's blocks come from ``kv_budget_bytes`` (what the
    model's ``weight_bytes`` and ``workspace_bytes`` leave, see :mod:`exo_sim.kv_budget`).
    """
    rows = []
    for tier, c in zip(spec.tiers, hierarchy.counters(), strict=True):
        reached = c.hits + c.misses
        cap = tier.capacity_blocks
        rows.append(
            {
                "name": tier.name,
                "medium": tier.medium,
                "codec": tier.codec,
                "policy": tier.policy,
                "capacity_bytes": tier.capacity_bytes,
                "kv_budget_bytes": tier.kv_budget_bytes,  # None: the whole tier holds blocks
                "weight_bytes": tier.weight_bytes,
                "workspace_bytes": tier.workspace_bytes,
                "block_bytes": tier.block_bytes,
                "capacity_blocks": cap,
                "capacity_tokens": tier.capacity_tokens,
                "high_watermark_blocks": tier.high_blocks,
                "low_watermark_blocks": tier.low_blocks,
                "bypassed": not tier.usable,
                "hits": c.hits,
                "misses": c.misses,
                "hit_ratio": c.hits / reached if reached else 0.0,
                "promotions": c.promotions,
                "demotions": c.demotions,
                "evictions": c.evictions,
                "drops": c.drops,
                "stranded": c.stranded,
                "writes": c.writes,
                "final_occupancy_blocks": c.used_blocks,
                "peak_occupancy_blocks": c.peak_blocks,
                "peak_occupancy": c.peak_blocks / cap if cap else 0.0,
                "mean_occupancy_blocks": c.mean_blocks,
                "mean_occupancy": c.mean_blocks / cap if cap else 0.0,
            }
        )
    return rows


def link_rows(spec: Spec, hierarchy: Hierarchy) -> list[dict[str, Any]]:
    """Bytes moved between each pair of tiers (in the direction moved)."""
    names = [t.name for t in spec.tiers]
    return [
        {"src": names[src], "dst": names[dst], "bytes_moved": moved}
        for (src, dst), moved in sorted(hierarchy.link_bytes().items())
    ]


def resolved_config(cfg: Any) -> dict[str, Any]:
    """The config as plain, fully resolved data (for ``summary.json`` and its hash)."""
    if isinstance(cfg, DictConfig):
        data = OmegaConf.to_container(cfg, resolve=True)
        return data if isinstance(data, dict) else {}  # type: ignore[return-value]
    return {}


def build_summary(
    source: str,
    cfg: Any,
    spec: Spec,
    hierarchy: Hierarchy,
    totals: Totals,
    *,
    workload: dict[str, Any],
    elapsed_s: float,
    resolved: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """The summary every source writes; clocked sources then fill TTFT, latency, makespan and link timing.

    Args:
        source: ``replay``, ``sim`` or ``runtime``.
        cfg: the composed root config (embedded, resolved, with its hash).
        spec: the resolved hierarchy.
        hierarchy: the decision core after the run (its counters).
        totals: the driver's per-run request figures.
        workload: the workload's ``describe()``.
        elapsed_s: wall time of the run itself.
        resolved: the resolved config, if already computed.
        notes: extra notes (the spec's own notes are always included).
    """
    resolved = resolved if resolved is not None else resolved_config(cfg)
    all_notes = list(spec.notes) + list(notes or [])
    top = spec.tiers[hierarchy.top]
    if totals.oversized:
        all_notes.append(
            f"{totals.oversized} requests referenced more blocks than the top tier ({top.name}) holds "
            f"({top.high_blocks}); their blocks were streamed through it in order"
        )
    if totals.refused:
        all_notes.append(
            f"{totals.refused} requests needed more blocks than the top tier ({top.name}) can give one request "
            f"({hierarchy.request_room}); a serving engine cannot run them, and they were refused"
        )
    h = hierarchy
    prompt = totals.prompt_tokens
    return {
        "schema_version": SCHEMA_VERSION,
        "source": source,
        "config_hash": config_hash(resolved),
        "config": resolved,
        "hardware": spec.hardware,
        "payload": spec.payload,
        "mode": spec.mode,
        "reuse": spec.reuse,
        "block_tokens": spec.block_tokens,
        "workload": workload,
        "requests": totals.requests,
        "requests_refused": totals.refused,
        "requests_exceeding_top_tier": totals.oversized,
        "accesses": h.accesses,
        "new_blocks": h.new_blocks,
        "recomputed_blocks": h.recomputed_blocks,
        "prompt_tokens": prompt,
        "hit_tokens": totals.hit_tokens,
        "hit_ratio_tokens": totals.hit_tokens / prompt if prompt else 0.0,
        "hit_tokens_by_tier": {t.name: n for t, n in zip(spec.tiers, totals.found_tokens, strict=True)},
        "prefill_tokens": {
            "new": totals.prefill_new_tokens,
            "recomputed": totals.prefill_recomputed_tokens,
            "total": totals.prefill_tokens,
        },
        "stranded_blocks": sum(h.stranded),
        "tiers": tier_rows(spec, h),
        "links": link_rows(spec, h),
        "ttft_s": {"p50": None, "p95": None, "p99": None},
        "latency_s": {"p50": None, "p95": None, "p99": None},
        "makespan_s": None,
        "elapsed_s": elapsed_s,
        "accesses_per_s": h.accesses / elapsed_s if elapsed_s > 0 else None,
        "notes": all_notes,
        "complete": True,
    }


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def write_results(
    out_dir: str | os.PathLike[str],
    summary: dict[str, Any],
    frames: dict[str, pd.DataFrame] | None = None,
) -> Path:
    """Write ``frames`` as ``<name>.parquet`` then ``summary.json`` (atomically, in that order).

    Returns:
        the path of ``summary.json``.

    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in (frames or {}).items():
        _atomic_write(out / f"{name}.parquet", lambda p, f=frame: f.to_parquet(p, index=False))
    path = out / "summary.json"
    text = json.dumps(summary, indent=2, default=str)
    _atomic_write(path, lambda p: p.write_text(text + "\n"))
    return path


# ---------------------------------------------------------------- clocked sources (sim, runtime)

REQUEST_COLUMNS = (
    "request",
    "agent",
    "arrival_s",
    "served_s",
    "ttft_s",
    "queue_s",
    "load_s",
    "compute_s",
    "prompt_tokens",
    "cached_tokens",
    "prefill_tokens",
    "recomputed_tokens",
    "blocks_read",
    "blocks_written",
    "recomputed_blocks",
    "stranded_blocks",
    "bytes_loaded",
    "in_system_at_arrival",
    "refused",
)
"""Columns of ``requests.parquet`` before the per-tier ``hits_<tier>`` columns.

``request``: position in the workload (0-based); ``agent``: the closed-loop agent that issued it (-1
in open loop); ``arrival_s``: when it reached the serving engine; ``served_s``: when its first token
was ready; ``ttft_s``: time to first token, the difference, made of ``queue_s`` (waiting for a compute
engine), ``load_s`` (loading its cached prefix from lower tiers: links and codec decode) and
``compute_s`` (prefilling the rest; under layerwise overlap load and compute run together, so the
parts add up to more than the TTFT); ``prompt_tokens``: tokens it reads; ``cached_tokens``: served from
cache (its cached prefix, under prefix reuse); ``prefill_tokens``: computed; ``recomputed_tokens``: of
those, tokens of blocks computed before in the run; ``blocks_read`` / ``blocks_written``: its
references; ``recomputed_blocks``: reads not served from cache; ``stranded_blocks``: reads resident but
unusable; ``hits_<tier>``: reads served from each tier (where its prefix was found); ``bytes_loaded``:
bytes promoted into the top tier for it (source encoding); ``in_system_at_arrival``: requests arrived
and not yet served when it arrived; ``refused``: a request a serving engine could not hold (no time).
"""


def latency_percentiles(latency_s: np.ndarray) -> dict[str, float | None]:
    """p50, p95 and p99 of request latencies in seconds (linear interpolation); ``None`` if empty."""
    if latency_s.shape[0] == 0:
        return {"p50": None, "p95": None, "p99": None}
    p50, p95, p99 = np.percentile(latency_s, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


@dataclass
class LinkUsage:
    """What one link resource carried in a clocked run (a direction of a duplex link, or a simplex link).

    ``busy_s`` is channel-seconds held by transfers (latency included); ``bytes_moved`` counts every
    byte that crossed, in the encoding it crossed in.
    """

    name: str
    src: str
    dst: str
    duplex: bool
    bandwidth_bytes_per_s: float
    latency_s: float
    channels: int
    bytes_moved: int
    transfers: int
    busy_s: float


def link_usage_rows(usages: list[LinkUsage], makespan_s: float | None) -> list[dict[str, Any]]:
    """``summary.json``'s ``link_usage`` entries.

    ``utilisation`` = bytes moved / (bandwidth x channels x makespan): the fraction of what the link
    could have carried that it did carry. ``busy_fraction`` = busy channel-seconds / (channels x
    makespan), which also counts each transfer's latency.
    """
    rows = []
    for u in usages:
        span = makespan_s if makespan_s and makespan_s > 0 else None
        rows.append(
            {
                "link": u.name,
                "src": u.src,
                "dst": u.dst,
                "duplex": u.duplex,
                "bandwidth_gbps": u.bandwidth_bytes_per_s / 1e9,
                "latency_us": u.latency_s * 1e6,
                "channels": u.channels,
                "bytes_moved": u.bytes_moved,
                "transfers": u.transfers,
                "busy_s": u.busy_s,
                "utilisation": u.bytes_moved / (u.bandwidth_bytes_per_s * u.channels * span) if span else 0.0,
                "busy_fraction": u.busy_s / (u.channels * span) if span else 0.0,
            }
        )
    return rows


def requests_frame(spec: Spec, columns: dict[str, np.ndarray], hits: np.ndarray) -> pd.DataFrame:
    """The table written to ``requests.parquet``: :data:`REQUEST_COLUMNS`, then ``hits_<tier>``.

    Args:
        spec: the resolved hierarchy (for tier names).
        columns: one array per name of :data:`REQUEST_COLUMNS`, all of one length.
        hits: reads found in each tier, shape ``(requests, tiers)``.
    """
    frame = pd.DataFrame({name: columns[name] for name in REQUEST_COLUMNS})
    for tier in spec.tiers:
        frame[f"hits_{tier.name}"] = hits[:, tier.index]
    return frame
