"""Gathering a sweep: every job's ``summary.json`` into one ``sweep.parquet``, and seaborn figures.

:class:`SweepGatherer` is a Hydra callback (registered in ``conf/config.yaml`` under
``hydra.callbacks``): when a multirun ends (``exo-sim -m policy=lru,fifo codec=fp16,int8``) it reads
the summary of every job under the sweep's folder and writes, at the sweep's root:

* ``sweep.parquet`` — one row per job: its overrides, source, hardware, payload, policy mix, codec
  mix, workload, per-tier hit ratios, recomputed tokens, bytes moved, latency p50/p95/p99 and makespan;
* ``hit_ratio.png`` — top-tier hit ratio per policy x codec mix;
* ``p99_latency.png`` — p99 time to first token per policy x codec mix, drawn only when some job has a
  clock (a replay sweep has no TTFT, so it gets no such figure rather than an empty one);
* ``occupancy.png`` — occupancy over time of every tier, one line per job.

A job that left no ``summary.json`` (it failed, or was interrupted) is not a row; the gatherer says
how many jobs it found. ``python -m exo_sim.sweep DIR`` gathers a sweep folder by hand.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)

SWEEP_FILE = "sweep.parquet"
FIGURES = ("hit_ratio.png", "p99_latency.png", "occupancy.png")
"""Every figure a sweep may get (``p99_latency.png`` only when some job has a clock)."""


def _overrides(job_dir: Path) -> list[str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    lines = [line[2:].strip() for line in path.read_text().splitlines() if line.startswith("- ")]
    return [line.strip("'\"") for line in lines]


def _row(root: Path, summary_path: Path) -> dict[str, Any]:
    s = json.loads(summary_path.read_text())
    job_dir = summary_path.parent
    cfg = s.get("config") or {}
    lat = s.get("ttft_s") or s.get("latency_s") or {}
    prefill = s.get("prefill_tokens") or {}
    overrides = _overrides(job_dir)
    row: dict[str, Any] = {
        "job": str(job_dir.relative_to(root)),
        "overrides": " ".join(overrides),
        "source": s.get("source"),
        "hardware": s.get("hardware"),
        "payload": s.get("payload"),
        "policy": (cfg.get("policy") or {}).get("name"),
        "codec": (cfg.get("codec") or {}).get("name"),
        "workload": (s.get("workload") or {}).get("kind"),
        "mode": s.get("mode"),
        "block_tokens": s.get("block_tokens"),
        "requests": s.get("requests"),
        "accesses": s.get("accesses"),
        "reuse": s.get("reuse"),
        "prompt_tokens": s.get("prompt_tokens"),
        "hit_ratio_tokens": s.get("hit_ratio_tokens"),
        "prefill_tokens": prefill.get("total"),
        "recomputed_tokens": prefill.get("recomputed"),
        "stranded_blocks": s.get("stranded_blocks"),
        "requests_refused": s.get("requests_refused"),
        "bytes_moved": sum(int(link.get("bytes_moved", 0)) for link in s.get("links") or []),
        "ttft_p50_s": lat.get("p50"),
        "ttft_p95_s": lat.get("p95"),
        "ttft_p99_s": lat.get("p99"),
        "latency_p50_s": lat.get("p50"),
        "latency_p95_s": lat.get("p95"),
        "latency_p99_s": lat.get("p99"),
        "makespan_s": s.get("makespan_s"),
        "config_hash": s.get("config_hash"),
    }
    tiers = s.get("tiers") or []
    row["top_hit_ratio"] = tiers[0]["hit_ratio"] if tiers else None
    for tier in tiers:
        row[f"hit_ratio_{tier['name']}"] = tier["hit_ratio"]
        row[f"stranded_{tier['name']}"] = tier.get("stranded")
        row[f"peak_occupancy_{tier['name']}"] = tier["peak_occupancy"]
    return row


def gather(root: str | os.PathLike[str], figures: bool = True) -> pd.DataFrame:
    """Gather every job's summary under ``root`` into ``root/sweep.parquet`` (and figures).

    Returns:
        the table written (empty when no job left a summary; nothing is written then).
    """
    root = Path(root)
    rows = [_row(root, p) for p in sorted(root.rglob("summary.json"))]
    frame = pd.DataFrame(rows)
    if frame.empty:
        log.warning("sweep %s: no job left a summary.json; nothing gathered", root)
        return frame
    frame = frame.sort_values("job", key=lambda col: col.map(_job_order)).reset_index(drop=True)
    tmp = root / (SWEEP_FILE + ".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, root / SWEEP_FILE)
    if figures:
        draw_figures(root, frame)
    log.info("sweep %s: gathered %d jobs into %s", root, len(frame), SWEEP_FILE)
    return frame


def _job_order(job: str) -> tuple[int, str]:
    head = job.split(os.sep, 1)[0]
    return (int(head), job) if head.isdigit() else (1 << 30, job)


def _label(frame: pd.DataFrame) -> list[str]:
    """A short label per job: the overrides that differ between jobs (the swept ones), else its folder."""
    parsed = [dict(o.split("=", 1) for o in text.split() if "=" in o) for text in frame["overrides"]]
    keys = list(dict.fromkeys(k for p in parsed for k in p))
    swept = [k for k in keys if len({p.get(k) for p in parsed}) > 1]
    labels = [" ".join(f"{k}={p[k]}" for k in swept if k in p) for p in parsed]
    return [label or job for label, job in zip(labels, frame["job"], strict=True)]


def draw_figures(root: Path, frame: pd.DataFrame) -> list[Path]:
    """Draw the sweep's figures into ``root`` (see the module docstring); return their paths."""
    import seaborn as sns
    from matplotlib.figure import Figure

    sns.set_theme(style="whitegrid")
    out: list[Path] = []
    data = frame.assign(policy=frame["policy"].fillna("?"), codec=frame["codec"].fillna("?"))
    for name, column, title in (
        ("hit_ratio.png", "top_hit_ratio", "top-tier hit ratio"),
        ("p99_latency.png", "ttft_p99_s", "p99 time to first token (s)"),
    ):
        values = pd.to_numeric(data[column], errors="coerce")
        if not values.notna().any():  # no job has a clock (a replay sweep): no figure, not an empty one
            stale = root / name
            stale.unlink(missing_ok=True)
            continue
        fig = Figure(figsize=(max(6.0, 1.2 * data["policy"].nunique() * data["codec"].nunique()), 4.5))
        ax = fig.subplots()
        sns.barplot(data=data.assign(**{column: values}), x="policy", y=column, hue="codec", ax=ax, errorbar=None)
        ax.set_ylabel(title)
        ax.set_title(f"{title} per policy x codec mix")
        fig.tight_layout()
        path = root / name
        fig.savefig(path, dpi=110)
        out.append(path)
    out.append(_draw_occupancy(root, frame, sns, Figure))
    return out


def _draw_occupancy(root: Path, frame: pd.DataFrame, sns: Any, figure_cls: Any) -> Path:
    parts = []
    for job, label in zip(frame["job"], _label(frame), strict=True):
        path = root / job / "timeseries.parquet"
        if path.is_file():
            ts = pd.read_parquet(path)
            ts["job"] = label
            parts.append(ts)
    tiers: list[str] = []
    data = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if not data.empty:
        tiers = list(dict.fromkeys(data["tier"]))
    clocked = not data.empty and data["time_s"].notna().all()
    x = "time_s" if clocked else "access_index"
    cols = max(1, len(tiers))
    fig = figure_cls(figsize=(4.5 * cols, 4.0))
    axes = fig.subplots(1, cols, squeeze=False)[0]
    for ax, tier in zip(axes, tiers or ["(none)"], strict=False):
        sub = data[data["tier"] == tier] if tiers else data
        if not sub.empty:
            sns.lineplot(data=sub, x=x, y="occupancy", hue="job", ax=ax, legend=ax is axes[-1])
        ax.set_title(f"tier {tier}")
        ax.set_xlabel("simulated time (s)" if clocked else "access index")
        ax.set_ylabel("occupancy (fraction of capacity)")
        ax.set_ylim(0, 1.05)
    legend = axes[-1].get_legend()
    if legend is not None:
        legend.set_bbox_to_anchor((1.02, 1.0))
        legend.set_loc("upper left")
    fig.tight_layout()
    path = root / "occupancy.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


class SweepGatherer(Callback):
    """Hydra callback: at the end of a multirun, :func:`gather` the sweep's folder.

    Args:
        figures: also draw the figures (on by default).
    """

    def __init__(self, figures: bool = True) -> None:
        self.figures = figures

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Gather ``hydra.sweep.dir`` once every job has returned."""
        root = Path(str(config.hydra.sweep.dir))
        if not root.is_dir():
            return
        frame = gather(root, figures=self.figures)
        if not frame.empty:
            print(f"sweep: {len(frame)} jobs -> {root / SWEEP_FILE}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """``python -m exo_sim.sweep DIR``: gather a sweep folder by hand."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m exo_sim.sweep SWEEP_DIR", file=sys.stderr)
        return 2
    frame = gather(args[0])
    print(f"{len(frame)} jobs -> {Path(args[0]) / SWEEP_FILE}")
    return 0 if not frame.empty else 1


if __name__ == "__main__":
    sys.exit(main())
