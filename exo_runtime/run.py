"""``run_runtime``: one config on this machine's real memories, with the shared decision core.

The steps of a run, each in its own module, all checks before anything is allocated:

1. validate the config and workload (as the replay does) and resolve the ``runtime`` keys into
   :class:`~exo_runtime.settings.RuntimeSettings` (:mod:`exo_runtime.settings`);
2. refuse media this machine lacks (a ``cuda`` or ``pinned`` tier without a GPU names
   ``hardware=ci_cpu``) and check the data directory and any manifest in it (:mod:`exo_runtime.datadir`);
3. check that every slab, the staging pool and the codec scratch fit the machine
   (:mod:`exo_runtime.fitcheck`);
4. allocate the stores, manifests and executor (:mod:`exo_runtime.allocate`) and recover the blocks an
   earlier run persisted (``resume``, :func:`~exo_runtime.datadir.recover`);
5. serve the workload request by request through the :class:`~exo_sim.driver.Driver` (the replay's
   and the timed model's walk of a request through the :class:`~exo_sim.hierarchy.Hierarchy`), each
   request's moves applied by the :class:`~exo_runtime.executor.Executor`
   (:func:`~exo_runtime.engine.serve.serve_workload`);
6. write the results in the common schema (:mod:`exo_sim.results`) with ``source = "runtime"``, plus
   what was measured (:mod:`exo_runtime.summary`).

Faults met during the run (a full disk; blocks corrupted on read or lost on resume) end it cleanly:
results are written (``complete`` says whether the workload was finished) and returned with the fault,
which the CLI reports in one sentence with exit status 3. Ctrl-C ends it in one line
(:class:`~exo_runtime.errors.Interrupted`) saying what was kept and what was removed.
"""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from exo_runtime.allocate import Allocation, allocate, close_stores
from exo_runtime.allocator import keep_freed_memory
from exo_runtime.datadir import DataDir, open_data_dir, prepare_dir, recover
from exo_runtime.engine.compute import Compute, birth_source, prepare_compute
from exo_runtime.engine.serve import HitReader, PrefixEngine, ServeResult, serve_workload
from exo_runtime.engine.tierio import TierIO
from exo_runtime.errors import DiskFullError, Interrupted, RunFault
from exo_runtime.fitcheck import NO_GPU_HINT, BufferSizes, check_media, check_run_fits
from exo_runtime.settings import RuntimeSettings, check_runtime_keys, resolve_settings
from exo_runtime.stores import Store
from exo_runtime.summary import ending_fault, runtime_summary
from exo_runtime.telemetry import TelemetrySampler
from exo_sim.errors import ExoError
from exo_sim.replay import ProgressFn, prepare
from exo_sim.results import OccupancySeries, write_results
from exo_sim.spec import Locator, Spec


@dataclass
class RuntimeResult:
    """What a runtime run produced; ``fault`` is the run's fault (already in the summary), if any."""

    spec: Spec
    summary: dict[str, Any]
    series: OccupancySeries
    requests: pd.DataFrame
    telemetry: pd.DataFrame
    out_dir: Path
    fault: RunFault | None


def run_runtime(
    cfg: Any,
    out_dir: str | os.PathLike[str],
    locate: Locator | None = None,
    progress: ProgressFn | None = None,
) -> RuntimeResult:
    """Run ``cfg`` on this machine's real memories and write its results into ``out_dir``.

    Args:
        cfg: the composed root config.
        out_dir: where ``summary.json``, ``timeseries.parquet``, ``requests.parquet`` and
            ``telemetry.parquet`` go (and ``data/``, unless ``runtime.data_dir`` says otherwise).
        locate: names the origin of a config key in error messages.
        progress: called with the number of block references processed since the last call.

    Raises:
        ExoError: bad input, or a config this machine cannot hold — before anything is allocated.
    """
    spec, workload = prepare(cfg, locate)
    settings = resolve_settings(cfg, locate)
    check_media(spec)
    out = Path(out_dir)
    prepare_dir(out, "the output folder")
    data = open_data_dir(spec, settings, out)
    sizes = check_run_fits(spec, settings, data, locate)
    keep_freed_memory()  # the allocator exo-calibrate measured the engine under
    threads_before = torch.get_num_threads()
    torch.set_num_threads(settings.codec_threads)  # pinned before the fit check measures the model's rate
    try:
        vram = sum(t.capacity_bytes for t in spec.tiers if t.usable and t.medium == "cuda")
        compute = prepare_compute(cfg, spec, settings, vram)
    except BaseException:
        torch.set_num_threads(threads_before)
        raise

    stores: list[Store | None] = [None] * len(spec.tiers)
    sampler: TelemetrySampler | None = None
    at = [0]  # the request being served, for the line an interruption ends with
    try:
        run = allocate(spec, settings, data, sizes, cfg.codec, birth_source(compute, cfg, spec), stores)
        recovery = recover(data, stores, run.staging, run.hierarchy, run.executor, run.manifests)
        sampler = TelemetrySampler(settings.telemetry_interval_s)
        sampler.start()
        io = TierIO(run.executor, pinned=compute.device.type == "cuda")
        loop = _serve(spec, workload, settings, sizes, run, io, compute, progress, at)
        telemetry = sampler.stop()
        sampler = None
        if loop.fault is None:
            run.executor.verify()
            run.hierarchy.verify()
        summary = runtime_summary(cfg, spec, workload, settings, data, recovery, run, io, compute, loop)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        raise Interrupted(_interrupted(data, at[0], stores)) from None
    finally:
        torch.set_num_threads(threads_before)
        if sampler is not None:
            sampler.stop()
        close_stores(stores)
        data.clean_up()

    fault = ending_fault(loop.fault, recovery.lost, run.executor.corruptions, out / "summary.json")
    if fault is not None:
        summary["fault"] = str(fault)
    frames = {"timeseries": loop.series.frame(spec), "requests": loop.requests, "telemetry": telemetry}
    write_results(out, summary, frames)
    return RuntimeResult(spec, summary, loop.series, loop.requests, telemetry, out, fault)


def _serve(
    spec: Spec,
    workload: Any,
    settings: RuntimeSettings,
    sizes: BufferSizes,
    run: Allocation,
    io: TierIO,
    compute: Compute,
    progress: ProgressFn | None,
    at: list[int],
) -> ServeResult:
    """Serve the workload with the engine ``compute`` allows, then commit the manifests one last time."""
    prefix = hits = None
    if compute.model is not None and spec.reuse == "prefix":
        prefix = PrefixEngine(compute.model, spec, run.hierarchy, io, compute.clock, settings.prefill_chunk_tokens)
    else:
        hits = HitReader(run.hierarchy, io)
    loop = serve_workload(
        spec,
        workload,
        run.hierarchy,
        run.executor,
        settings,
        settings.timeseries_points,
        sizes.staging_bytes,
        sizes.reserve_bytes,
        sizes.worst_moves,
        compute.clock if compute.mode == "model" else None,
        prefix,
        hits,
        progress,
        lambda n: at.__setitem__(0, n),
    )
    try:
        run.executor.commit()
    except DiskFullError as err:  # the disk is still full: the manifest on disk stays the last one committed
        loop.fault = loop.fault or err
    return loop


def _interrupted(data: DataDir, at: int, stores: list[Store | None]) -> str:
    """The one line an interrupted run ends with: where it stopped, what was kept, what was removed."""
    memory = [st.name for st in stores if st is not None and not st.durable]
    removed = [f"the memory tiers' slabs ({', '.join(memory)})"] if memory else []
    kept = "no results (summary.json and the parquet files were not written)"
    if data.temporary:
        removed.append(f"the file tiers' data in {data.path}")
    elif data.durable:
        kept += f"; kept {data.path}: its manifests list the blocks committed so far, for runtime.resume=true"
    return f"interrupted at request {at}: {kept}; removed {' and '.join(removed) or 'nothing'}"


__all__ = [
    "NO_GPU_HINT",
    "ExoError",
    "RuntimeResult",
    "check_media",
    "check_runtime_keys",
    "run_runtime",
]
