"""The fast replay: drives the decision core over a workload with no clock.

Occupancy, hit, eviction and byte counts only — for large sweeps and miss-ratio curves. Its
decisions are, by construction, the ones the SimPy model and the runtime make for the same config.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from exo_sim.driver import Driver, resolve_reuse
from exo_sim.future import with_next_access
from exo_sim.hierarchy import Hierarchy
from exo_sim.results import OccupancySeries, build_summary
from exo_sim.spec import Locator, Spec, build_spec
from exo_sim.workloads import make_workload
from exo_sim.workloads.base import RequestChunk, Workload

ProgressFn = Callable[[int], object]
"""Told how many block references were processed since the last call (a tqdm bar's update fits)."""


@dataclass
class ReplayResult:
    """What a replay produced: the summary (``summary.json``'s content) and the occupancy series."""

    spec: Spec
    summary: dict[str, Any]
    series: OccupancySeries
    hierarchy: Hierarchy


def prepare(cfg: Any, locate: Locator | None = None) -> tuple[Spec, Workload]:
    """Validate the whole config and its workload (no work done yet); the spec carries the reuse rule."""
    spec = build_spec(cfg, locate)
    workload = make_workload(cfg.workload, spec.block_tokens, locate)
    reuse = resolve_reuse(str(cfg.hierarchy.reuse), str(cfg.payload.kind), workload, locate)
    return replace(spec, reuse=reuse), workload


def workload_chunks(workload: Workload, hierarchy: Hierarchy) -> Iterator[RequestChunk]:
    """The workload's chunks, with next-access times added when a policy needs them."""
    chunks = workload.chunks()
    if hierarchy.needs_future and not workload.has_future:
        return with_next_access(chunks)
    return chunks


def sample_every(workload: Workload, points: int) -> int:
    """Occupancy sampling period in accesses (every clock samples at the same access indices)."""
    total = workload.estimated_refs()
    if not total or points <= 0:
        return 1024
    return max(1, -(-int(total) // points))


def run_replay(
    cfg: Any,
    locate: Locator | None = None,
    progress: ProgressFn | None = None,
    resolved: dict[str, Any] | None = None,
    prepared: tuple[Spec, Workload] | None = None,
) -> ReplayResult:
    """Replay ``cfg``'s workload through its hierarchy and build the summary.

    Args:
        cfg: the composed root config.
        locate: names the origin of a config key in error messages.
        progress: called with the number of references processed since the last call.
        resolved: the resolved config to embed in the summary (computed from ``cfg`` if omitted).
        prepared: the result of :func:`prepare` for ``cfg``, if the caller already validated it.

    Raises:
        ExoError: on invalid config or trace (before any work where it can be known in advance).
    """
    spec, workload = prepared if prepared is not None else prepare(cfg, locate)
    h = Hierarchy(spec)
    series = OccupancySeries()
    series.sample(0, h.used)
    driver = Driver(h, spec.reuse, spec.block_tokens, series, sample_every(workload, int(cfg.output.timeseries_points)))
    t0 = time.perf_counter()
    for chunk in workload_chunks(workload, h):
        driver.chunk(chunk)
        if progress is not None:
            progress(chunk.n_refs)
    elapsed = time.perf_counter() - t0
    driver.finish()

    summary = build_summary(
        "replay",
        cfg,
        spec,
        h,
        driver.totals,
        workload=workload.describe(),
        elapsed_s=elapsed,
        resolved=resolved,
        notes=workload.notes(),
    )
    return ReplayResult(spec=spec, summary=summary, series=series, hierarchy=h)
