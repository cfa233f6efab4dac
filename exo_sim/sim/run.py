"""Run one composed config through the timed model and build the common result schema (``source=sim``).

The summary has every key of the replay's, with the same values for the decisions (tiers, links'
bytes, recomputed blocks), plus what only a clock gives: latency percentiles, makespan, per-link
busy time and utilisation (``link_usage``), prefill and codec engine use, the arrival process, the
engine's costs around the prefill (``engine``), and ``pair_usage``: bytes, blocks and busy time per
source / destination tier pair of the copies the engine's own thread does (``copies: host``), as the
runtime measures its copies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from exo_sim.hierarchy import Hierarchy
from exo_sim.replay import prepare, sample_every, workload_chunks
from exo_sim.results import (
    OccupancySeries,
    build_summary,
    latency_percentiles,
    link_usage_rows,
    requests_frame,
)
from exo_sim.sim.arrivals import arrival_process
from exo_sim.sim.model import ProgressFn, TimedModel
from exo_sim.sim.settings import SimSettings, sim_settings, with_compute
from exo_sim.spec import Locator, Spec
from exo_sim.workloads.base import Workload


@dataclass
class SimResult:
    """What a timed run produced: the summary, the occupancy series and the per-request table."""

    spec: Spec
    summary: dict[str, Any]
    series: OccupancySeries
    requests: pd.DataFrame
    model: TimedModel

    @property
    def hierarchy(self) -> Hierarchy:
        """The decision core after the run."""
        return self.model.h


def _share(busy_s: float, servers: int, makespan_s: float) -> float:
    """Fraction of the servers' time over the makespan that was busy."""
    return busy_s / (servers * makespan_s) if makespan_s > 0 else 0.0


def prepare_sim(cfg: Any, locate: Locator | None = None) -> tuple[Spec, Workload, SimSettings, TimedModel]:
    """Validate the whole config (hierarchy, workload, ``sim``, links and codecs) before any work.

    Raises:
        ExoError: naming the first invalid key (or trace file).
    """
    spec, workload = prepare(cfg, locate)
    settings = with_compute(sim_settings(cfg.sim, locate), cfg, locate)
    model = TimedModel(spec, settings, locate)
    return spec, workload, settings, model


def run_sim(
    cfg: Any,
    locate: Locator | None = None,
    progress: ProgressFn | None = None,
    resolved: dict[str, Any] | None = None,
    keep_log: bool = False,
) -> SimResult:
    """Run ``cfg``'s workload through the timed model and build the summary.

    Args:
        cfg: the composed root config.
        locate: names the origin of a config key in error messages.
        progress: called with the number of references handed to the core since the last call.
        resolved: the resolved config to embed in the summary (computed from ``cfg`` if omitted).
        keep_log: keep the model's log of every transfer (tiny cases only).

    Raises:
        ExoError: on invalid config or trace (before any work where it can be known in advance).
    """
    spec, workload, settings, model = prepare_sim(cfg, locate)
    if keep_log:
        model.enable_log()
    arrivals = arrival_process(settings, int(cfg.seed), locate)
    h = model.h
    series = OccupancySeries()
    every = sample_every(workload, int(cfg.output.timeseries_points))
    series.sample(0, h.used, 0.0)

    t0 = time.perf_counter()
    model.run(workload_chunks(workload, h), arrivals.start, series, every, progress)
    elapsed = time.perf_counter() - t0
    if series.access_index[-1] != h.accesses:
        series.sample(h.accesses, h.used, model.env.now)

    columns, hits = model.request_columns()
    requests = requests_frame(spec, columns, hits)
    ttft = columns["ttft_s"][~columns["refused"]]
    makespan = model.makespan_s
    n_served = int(ttft.shape[0])

    summary = build_summary(
        "sim",
        cfg,
        spec,
        h,
        model.driver.totals,
        workload=workload.describe(),
        elapsed_s=elapsed,
        resolved=resolved,
        notes=workload.notes() + arrivals.notes(),
    )
    complete = summary.pop("complete")
    summary["ttft_s"] = latency_percentiles(ttft)
    summary["latency_s"] = summary["ttft_s"]
    summary["makespan_s"] = makespan
    cost = settings.prefill_cost
    summary.update(
        {
            "ttft_mean_s": float(ttft.mean()) if n_served else None,
            "ttft_max_s": float(ttft.max()) if n_served else None,
            "ttft_parts_mean_s": {
                part: float(columns[f"{part}_s"][~columns["refused"]].mean()) if n_served else None
                for part in ("queue", "load", "compute")
            },
            "throughput_requests_per_s": n_served / makespan if makespan > 0 else None,
            "mean_in_system": model.mean_in_system,
            "link_usage": link_usage_rows(model.link_usage(), makespan),
            "compute": {
                "engines": settings.compute_engines,
                "overlap": "layerwise" if settings.layerwise else "none",
                "cost": "encode" if settings.encode is not None else "prefill",
                "source": settings.encode.cost.source if settings.encode is not None else cost.source,
                "compute_s": float(sum(model.compute_s)),
                "prefill_cost": {**cost.as_config(), "source": cost.source, "basis": cost.basis},
                "encode_cost": None if settings.encode is None else {
                    **settings.encode.cost.describe(),
                    "chunks_per_block": settings.encode.chunks_per_block,
                    "tokens_per_chunk": settings.encode.tokens_per_chunk,
                },
                "busy_s": model.engine_busy_s,
                "utilisation": _share(model.engine_busy_s, settings.compute_engines, makespan),
            },
            "codec": {
                "workers": settings.codec_workers,
                "busy_s": model.codec_busy_s,
                "utilisation": _share(model.codec_busy_s, settings.codec_workers, makespan),
            },
            "arrival": arrivals.describe(),
            "demotion": "sync" if settings.demotion_sync else "background",
            "multi_hop": "pipeline" if settings.pipeline else "store_and_forward",
            "engine": settings.engine.as_dict(),
            "pair_usage": [vars(u) for u in model.pair_usage()],
            "complete": complete,
        }
    )
    return SimResult(spec=spec, summary=summary, series=series, requests=requests, model=model)
