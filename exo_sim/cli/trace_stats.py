"""``exo-trace-stats``: requests, references, distinct blocks, reuse, footprint and arrival rate.

``exo-trace-stats workload=mooncake block_tokens=16``.

Prints them and writes ``trace_stats.json`` into Hydra's run folder (atomically, after the whole
stream was read: a malformed trace leaves no file).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from exo_sim.cli.entry import CONF_DIR, make_locator, setup, user_errors
from exo_sim.replay import prepare
from exo_sim.trace_stats import TraceStats, trace_stats

setup()


def stats_to_dir(cfg: DictConfig, out_dir: str | Path) -> TraceStats:
    """Validate ``cfg``, compute its workload's statistics and write ``trace_stats.json`` to ``out_dir``."""
    spec, workload = prepare(cfg, make_locator())
    stats = trace_stats(workload, spec, cfg.codec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "trace_stats.json.tmp"
    tmp.write_text(json.dumps(stats.to_dict(), indent=2) + "\n")
    os.replace(tmp, out / "trace_stats.json")
    return stats


def format_stats(s: TraceStats) -> str:
    """The statistics as aligned text lines."""
    rate = f"{s.arrival_rate_per_s:,.3f}/s" if s.arrival_rate_per_s is not None else "n/a (one instant)"
    rows: list[tuple[str, Any]] = [
        ("workload", s.workload.get("path", s.workload["kind"])),
        ("block tokens", s.block_tokens),
        ("requests", f"{s.requests:,}"),
        ("block references", f"{s.block_refs:,} ({s.reads:,} reads, {s.writes:,} writes)"),
        ("distinct blocks", f"{s.distinct_blocks:,} ({s.distinct_tokens:,} tokens)"),
        ("reuse fraction", f"{s.reuse_fraction:.4f}"),
        ("infinite-cache hit ratio", f"{s.infinite_cache_hit_ratio:.4f}"),
        ("footprint", f"{s.footprint_bytes:,} bytes ({s.default_codec}, {s.block_bytes:,} bytes/block)"),
        ("blocks per request", f"mean {s.blocks_per_request_mean:.1f}, max {s.blocks_per_request_max:,}"),
        ("duration", f"{s.duration_s:,.3f} s" if s.duration_s is not None else "n/a"),
        ("arrival rate", rate),
    ]
    for tier, b in s.footprint_bytes_by_tier.items():
        rows.append((f"footprint in tier {tier}", f"{b:,} bytes"))
    lines = [f"{k:<26} {v}" for k, v in rows]
    lines += [f"note: {n}" for n in s.notes]
    return "\n".join(lines)


@hydra.main(version_base=None, config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    """Console entry point (``exo-trace-stats``)."""
    with user_errors():
        out = HydraConfig.get().runtime.output_dir
        stats = stats_to_dir(cfg, out)
        print(format_stats(stats))
        print(f"-> {out}/trace_stats.json")


if __name__ == "__main__":
    main()
