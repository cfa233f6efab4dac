"""A runtime run's ``summary.json``: the common schema (:mod:`exo_sim.results`) and what was measured.

Everything here comes from the run's own meters and counters: the link usage is bytes moved over busy
seconds as measured (nothing from the hardware profile), the engine's load, store and compute figures
from its meters, TTFT and its parts from the served requests. A fault (the run's, or blocks found
corrupted or lost) is said in one sentence (:func:`ending_fault`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exo_runtime.allocate import Allocation
from exo_runtime.datadir import DataDir, Recovery
from exo_runtime.engine.compute import Compute
from exo_runtime.engine.serve import ServeResult
from exo_runtime.engine.tierio import TierIO
from exo_runtime.errors import IntegrityFault, RunFault
from exo_runtime.executor import Corruption
from exo_runtime.nvml import GpuMemoryProbe
from exo_runtime.settings import RuntimeSettings
from exo_sim.results import build_summary, latency_percentiles, resolved_config
from exo_sim.spec import Spec


def link_usage(measured: list[dict[str, Any]], makespan_s: float) -> list[dict[str, Any]]:
    """``link_usage`` as measured: per tier pair, the bytes moved, the time spent and their ratio.

    Nothing from the hardware profile (its bandwidth, latency or channels) is carried: a runtime row
    says only what this run measured (``bandwidth_gbps`` is bytes moved / busy seconds, in GB/s).
    """
    rows = []
    for m in measured:
        busy = float(m["seconds"])
        rows.append(
            {
                "link": f"{m['src']}->{m['dst']}",
                "src": m["src"],
                "dst": m["dst"],
                "bytes_moved": int(m["bytes"]),
                "transfers": int(m["blocks"]),
                "busy_s": busy,
                "bandwidth_gbps": int(m["bytes"]) / busy / 1e9 if busy > 0 else None,
                "busy_fraction": busy / makespan_s if makespan_s > 0 else 0.0,
                "source": "measured",
            }
        )
    return rows


def runtime_summary(
    cfg: Any,
    spec: Spec,
    workload: Any,
    settings: RuntimeSettings,
    data: DataDir,
    recovery: Recovery,
    run: Allocation,
    io: TierIO,
    compute: Compute,
    loop: ServeResult,
) -> dict[str, Any]:
    """The common summary, with the runtime's clock, what it measured and what it persisted.

    Args:
        cfg: the composed root config (the common schema records it).
        spec: the run's spec.
        workload: the workload served.
        settings: the run's resolved settings.
        data: the checked data directory.
        recovery: what was recovered from it before the first request.
        run: the stores, executor and manifests the run used.
        io: the engine's tier reads and writes (their meters).
        compute: the engine's compute (its clock and model).
        loop: what serving the workload returned.
    """
    executor = run.executor
    payload = str(cfg.payload.name)
    run_notes = [*data.notes, *recovery.notes]
    for st in run.stores:
        if st is not None and st.medium == "shm":
            run_notes.append(
                f"tier {st.name} is POSIX shared memory (no GPU here): host memory, not page-locked "
                "and not GPU-visible"
            )
    if compute.mode == "model":
        model = compute.describe(payload)
        run_notes.append(f"the engine's {model['kind']} has {model['weights']}")
    else:
        run_notes.append(compute.describe(payload)["weights"])
    if loop.staging_grown:
        run_notes.append(f"the staging pool grew to {loop.staging_grown} bytes for an access with many moves")
    summary = build_summary(
        "runtime",
        cfg,
        spec,
        run.hierarchy,
        loop.totals,
        workload=workload.describe(),
        elapsed_s=loop.elapsed_s,
        resolved=resolved_config(cfg),
        notes=run_notes,
    )
    preloaded = recovery.preloaded_blocks
    for row, k in zip(summary["tiers"], range(len(spec.tiers)), strict=True):
        if preloaded[k]:
            row["writes"] -= preloaded[k]
            row["resumed_blocks"] = preloaded[k]
    summary["ttft_s"] = latency_percentiles(loop.ttft_s)
    summary["latency_s"] = summary["ttft_s"]
    summary["makespan_s"] = loop.elapsed_s
    measured = executor.measured()
    summary["link_usage"] = link_usage(measured["links"], loop.elapsed_s)
    measured["engine"] = _engine(spec, io, compute, loop)
    summary["measured"] = measured
    summary["model"] = compute.describe(payload)
    gpu = GpuMemoryProbe()
    summary["runtime"] = {
        "stores": [st.describe() for st in run.stores if st is not None],
        "gpu": gpu.name() if gpu.available else None,
        "integrity": {
            "mode": executor.integrity,
            "reads_checked": executor.reads_checked,
            "corrupted": [vars(c) for c in executor.corruptions],
        },
        "births": executor.births,
        "batches": executor.batches,
        "max_batch_moves": executor.max_batch_moves,
        "staged_blocks": executor.staged_blocks,
        "staging_bytes": executor.staging.nbytes,
        "staging_pinned": executor.staging.pinned,
        "data_dir": str(data.path) if data.durable else None,
        "persistence": {
            "manifests": {m.store.name: str(m.path) for m in run.manifests.values()},
            "commits": {m.store.name: m.commits for m in run.manifests.values()},
            "resume": settings.resume,
            "recovered": recovery.recovered,
            "lost": [vars(c) for c in recovery.lost],
        },
    }
    if loop.fault is not None:
        summary["complete"] = False
        summary["stopped_at_request"] = loop.stopped_at_request
        summary["notes"].append(
            f"the run stopped at request {loop.stopped_at_request}: its moves were undone, and the counts "
            "include that request's decisions"
        )
    if data.temporary:  # nobody can resume from the run folder's own data: it is removed at the end
        summary["runtime"]["persistence"]["removed"] = True
        summary["notes"].append(
            f"the file tiers' slabs lived in {data.path} and were removed at the end; set runtime.data_dir "
            "to keep them for a later runtime.resume=true"
        )
    return summary


def _engine(spec: Spec, io: TierIO, compute: Compute, loop: ServeResult) -> dict[str, Any]:
    """``measured.engine``: compute time and rate, the tier loads and stores, and TTFT's parts."""
    names = [t.name for t in spec.tiers]
    req = loop.requests[~loop.requests["refused"]]
    return {
        "compute_s": compute.clock.s,
        "compute_tokens": compute.clock.tokens,
        "tokens_per_s": compute.clock.tokens / compute.clock.s if compute.clock.s > 0 else None,
        "load_s": float(req["load_s"].sum()),
        "loads": [
            {"tier": names[k], "bytes": m.bytes, "blocks": m.blocks, "seconds": m.ns / 1e9, "bandwidth_gbps": m.gbps}
            for k, m in sorted(io.load_meter.items())
        ],
        "stores": [
            {"tier": names[k], "bytes": m.bytes, "blocks": m.blocks, "seconds": m.ns / 1e9, "bandwidth_gbps": m.gbps}
            for k, m in sorted(io.store_meter.items())
        ],
        "ttft_parts_s": {
            "queue": latency_percentiles(req["queue_s"].to_numpy()),
            "load": latency_percentiles(req["load_s"].to_numpy()),
            "compute": latency_percentiles(req["compute_s"].to_numpy()),
        },
    }


def ending_fault(
    fault: RunFault | None, lost: list[Corruption], corrupted: list[Corruption], summary_path: Path
) -> RunFault | None:
    """The fault a run ends with: its own (``fault``), else one naming the blocks found corrupted or lost."""
    bad = lost + corrupted
    if fault is not None or not bad:
        return fault
    first = bad[0]
    return IntegrityFault(
        f"{len(bad)} blocks were found corrupted or lost ({len(lost)} on resume, "
        f"{len(corrupted)} on read; first: block {first.block} in tier {first.tier} slot "
        f"{first.slot}, {first.reason}); none was served, each is recomputed when needed, and all "
        f"are listed in {summary_path}"
    )


__all__ = ["ending_fault", "link_usage", "runtime_summary"]
