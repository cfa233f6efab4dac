"""``run_runtime``: one config on this machine's real memories, with the shared decision core.

Order of work: validate the config and workload (as the replay does) and the ``runtime`` keys; refuse
media this machine lacks (a ``cuda`` or ``pinned`` tier without a GPU names ``hardware=ci_cpu``);
check the data directory and any manifest in it; check that every slab, the staging pool and the codec
scratch fit the machine — all before allocating anything. Then allocate the stores, recover the blocks
an earlier run persisted (``resume``), and hand the workload request by request to the
:class:`~exo_sim.driver.Driver` (the replay's and the timed model's walk of a request through the
:class:`~exo_sim.hierarchy.Hierarchy`), handing each request's moves to the
:class:`~exo_runtime.executor.Executor`. Results use the common schema (:mod:`exo_sim.results`) with
``source = "runtime"``, plus what was measured.

Faults met during the run (a full disk; blocks corrupted on read or lost on resume) end it cleanly:
results are written (``complete`` says whether the workload was finished) and returned with the fault,
which the CLI reports in one sentence with exit status 3.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from exo_runtime.buffers import ALIGN_BYTES, StagingPool, align_up
from exo_runtime.codecs import Codec, make_codec
from exo_runtime.engine.compute import Compute, birth_source, prepare_compute
from exo_runtime.engine.serve import HitReader, PrefixEngine, ServeResult, serve_workload
from exo_runtime.engine.tierio import TierIO
from exo_runtime.errors import DataDirError, DiskFullError, IntegrityFault, Interrupted, MachineError, RunFault
from exo_runtime.executor import STREAM_BYTES, Corruption, Executor, recovered_copy
from exo_runtime.fit import check_fit, machine_room
from exo_runtime.integrity import row_crcs
from exo_runtime.manifest import Manifest, load_manifest, manifest_path
from exo_runtime.nvml import GpuMemoryProbe
from exo_runtime.settings import RuntimeSettings, check_runtime_keys, resolve_settings
from exo_runtime.stores import Footprint, Store, StoreSettings, store_class
from exo_runtime.telemetry import TelemetrySampler
from exo_sim.errors import ConfigError, ExoError
from exo_sim.hierarchy import Hierarchy
from exo_sim.replay import ProgressFn, prepare
from exo_sim.results import (
    OccupancySeries,
    build_summary,
    config_hash,
    latency_percentiles,
    resolved_config,
    write_results,
)
from exo_sim.spec import Locator, Spec, TierSpec

NO_GPU_HINT = "run with hardware=ci_cpu or another profile without cuda and pinned tiers"


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


# ---------------------------------------------------------------------------- checks before work
def check_media(spec: Spec) -> None:
    """Refuse a tier whose medium this machine lacks (never emulated: host memory is not VRAM)."""
    for t in spec.tiers:
        if not t.usable:
            continue
        try:
            cls = store_class(t.medium)
        except KeyError as err:
            raise ConfigError(f"hardware.tiers[{t.index}].medium", str(err.args[0])) from None
        reason = cls.unavailable()
        if reason:
            raise MachineError(
                f"hardware {spec.hardware} has a {t.medium} tier ({t.name}) but {reason}; {NO_GPU_HINT}"
            )


def prepare_dir(path: Path, key: str) -> None:
    """Create ``path`` if needed and prove it writable; :class:`DataDirError` naming ``key`` if not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".exo-probe-"):
            pass
    except OSError as err:
        reason = err.strerror or str(err)
        raise DataDirError(f"{key} {path} is not a writable directory ({reason})") from None


def tier_layout(cfg: Any, spec: Spec, tier: TierSpec, slots: int, row_bytes: int) -> dict[str, Any]:
    """What a durable tier's file holds, as data: a manifest is reusable only under an equal layout."""
    payload = cfg.payload
    data = OmegaConf.to_container(payload, resolve=True) if isinstance(payload, DictConfig) else vars(payload)
    mix = cfg.codec
    return {
        "payload": data,
        "block_tokens": spec.block_tokens,
        "tier": tier.name,
        "medium": tier.medium,
        "codec": tier.codec,
        "codec_params": {
            "int8_group_size": int(mix.int8_group_size),
            "int4_group_size": int(mix.int4_group_size),
            "scale_bytes": int(mix.scale_bytes),
        },
        "block_bytes": tier.block_bytes,
        "capacity_blocks": tier.capacity_blocks,
        "slots": slots,
        "row_bytes": row_bytes,
        "seed": int(cfg.seed),
    }


def worst_moves_per_access(spec: Spec) -> int:
    """A generous bound on the moves one access can cause (admission, victims, cascades, persist)."""
    n_out = [max(1, t.high_blocks - max(t.low_blocks, 1) + 1) for t in spec.tiers if t.usable]
    cascade = 1
    total = 1
    for k in n_out:
        cascade = cascade * k + 1
        total += cascade
    return 2 * total if spec.mode == "write_through" else total


def batch_move_limit(cfg: Any, spec: Spec) -> int:
    """Moves a batch may hold before the next access starts a new one, as the request loop flushes.

    The staging pool (``runtime.staging_bytes``, or its default) holds ``(staging - reserve) //
    per_move`` moves and one access may add up to :func:`worst_moves_per_access`, so the loop applies
    the batch before an access whenever it holds more than the difference (which may be 0 or less:
    then every access that follows a move starts a new batch). The timed model's serial executor
    batches alike with ``sim.host.batch_moves`` set to this.
    """
    usable = [t for t in spec.tiers if t.usable]
    classes = [store_class(t.medium) for t in usable]
    durable = any(c.durable for c in classes)
    strides = [c.row_bytes_for(t.block_bytes) for c, t in zip(classes, usable, strict=True)]
    widest = max(align_up(s) if durable else s for s in strides)
    reserve = 2 * ALIGN_BYTES * (len(spec.tiers) + 1) ** 2
    staging = cfg.runtime.staging_bytes
    staging_bytes = max(64 * 2**20, 4 * widest + reserve) if staging is None else int(staging)
    per_move = max(align_up(s, c.row_align) if c.row_align > 1 else s for c, s in zip(classes, strides, strict=True))
    return max(1, (staging_bytes - reserve) // per_move) - worst_moves_per_access(spec)


# ---------------------------------------------------------------------------- recovery
@dataclass
class _Recovery:
    resumed: int = 0
    over_watermark: int = 0
    lost: list[Corruption] | None = None


def _recover(
    k: int,
    store: Store,
    entries: np.ndarray,
    staging: StagingPool,
    h: Hierarchy,
    executor: Executor,
    manifest: Manifest,
    stride: int,
) -> _Recovery:
    """Check every block a manifest names (bit for bit) and place the intact ones in tier ``k``."""
    out = _Recovery(lost=[])
    assert out.lost is not None
    ok: list[Any] = []
    seen_slots: set[int] = set()
    order = np.argsort(entries["slot"], kind="stable")
    batch = max(1, staging.nbytes // (stride + ALIGN_BYTES))
    valid = [entries[i] for i in order if 0 <= int(entries[i]["slot"]) < store.slots]
    for e in (entries[i] for i in order if not 0 <= int(entries[i]["slot"]) < store.slots):
        out.lost.append(Corruption(int(e["block"]), store.name, int(e["slot"]), "slot outside the slab"))
    for a in range(0, len(valid), batch):
        part = valid[a : a + batch]
        rows = staging.rows(len(part), stride)
        store.read([int(e["slot"]) for e in part], rows)
        crcs = row_crcs(rows, store.slot_bytes)
        staging.reset()
        for e, c in zip(part, crcs, strict=True):
            slot = int(e["slot"])
            if c != int(e["crc"]):
                out.lost.append(Corruption(int(e["block"]), store.name, slot, "torn or corrupted on disk"))
            elif slot in seen_slots:
                out.lost.append(Corruption(int(e["block"]), store.name, slot, "slot named twice"))
            else:
                seen_slots.add(slot)
                ok.append(e)
    ok.sort(key=lambda e: int(e["seq"]))
    left = set(h.preload(k, [int(e["block"]) for e in ok]))
    placed = []
    for e in ok:
        block, copy, birth = recovered_copy(e)
        if block in left:
            out.over_watermark += 1
            continue
        placed.append(copy.slot)
        executor.adopt(k, block, copy, birth)
        manifest.restore(block, (copy.slot, copy.crc, birth, int(e["seq"]), copy.bound, copy.lossless))
        manifest.seq = max(manifest.seq, int(e["seq"]))
    store.claim(placed)
    out.resumed = len(placed)
    manifest.commit()
    return out


# ---------------------------------------------------------------------------- the run
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
    rc = resolve_settings(cfg.runtime, locate)
    check_media(spec)
    out = Path(out_dir)
    prepare_dir(out, "the output folder")
    data_dir = rc.data_dir if rc.data_dir is not None else out / "data"
    usable = [t for t in spec.tiers if t.usable]
    durable = [t for t in usable if store_class(t.medium).durable]
    if durable:
        prepare_dir(data_dir, "runtime.data_dir")
    settings = StoreSettings(
        data_dir=data_dir,
        prefault=rc.prefault,
        resume=rc.resume,
        persist=rc.data_dir is not None,  # otherwise the slabs are nameless: nothing outlives the run, even killed
        spare_fraction=rc.file_spare_fraction,
        tag=f"exo-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        io_threads=rc.file_io_threads,
    )
    notes: list[str] = []

    # manifests: refuse another config's, or an earlier run's unless resuming
    layouts: dict[int, dict[str, Any]] = {}
    found: dict[int, np.ndarray] = {}
    reusable_disk = 0
    for t in durable:
        cls = store_class(t.medium)
        layout = tier_layout(cfg, spec, t, cls.physical_slots(t, settings), cls.row_bytes_for(t.block_bytes))
        layouts[t.index] = layout
        mpath = manifest_path(data_dir, t.name)
        if not mpath.exists():
            if rc.resume:
                notes.append(f"runtime.resume=true but {mpath} does not exist: tier {t.name} starts empty")
            continue
        header, entries = load_manifest(mpath)
        if not rc.resume:
            raise DataDirError(
                f"runtime.data_dir {data_dir} already holds {len(entries)} blocks of tier {t.name} "
                f"persisted by an earlier run ({mpath}); pass runtime.resume=true to reuse them or "
                "choose another runtime.data_dir"
            )
        if header.get("layout_hash") != config_hash(layout):
            raise DataDirError(
                f"manifest {mpath} was written for another config (its payload, block size, codec, "
                f"tier capacity, spare slots or seed differ: layout {header.get('layout_hash')}, this "
                f"config's {config_hash(layout)}); use another runtime.data_dir"
            )
        found[t.index] = entries
        slab = data_dir / f"{t.name}.slab"
        if slab.exists():
            reusable_disk += min(slab.stat().st_blocks * 512, slab.stat().st_size)

    # fit, before allocating anything
    pinned = torch.cuda.is_available()
    scratch_bytes = rc.codec_scratch_bytes
    elements = spec.content.elements
    scratch_total = max(scratch_bytes, 4 * elements) * (2 if rc.integrity == "full" else 1)
    strides = [store_class(t.medium).row_bytes_for(t.block_bytes) for t in usable]
    widest = max(align_up(s) if durable else s for s in strides)
    reserve = 2 * ALIGN_BYTES * (len(spec.tiers) + 1) ** 2
    least = 2 * widest + reserve  # one staged row per move, two moves at the very least
    if rc.staging_bytes is None:
        staging_bytes = max(64 * 2**20, 4 * widest + reserve)
    else:
        staging_bytes = rc.staging_bytes
        if staging_bytes < least:
            raise ConfigError(
                "runtime.staging_bytes",
                f"is {staging_bytes}, too small for blocks of up to {max(strides)} bytes: a batch needs "
                f"at least {least} (or leave it null to size it from the blocks)",
                locate("runtime.staging_bytes") if locate else None,
            )
    bounce = 2 * align_up(max(STREAM_BYTES, widest))
    host_buffers = staging_bytes + bounce
    parts = [(f"tier {t.name}", store_class(t.medium).footprint(t, settings)) for t in usable]
    buffers = Footprint(host_bytes=host_buffers, locked_bytes=host_buffers if pinned else 0)
    parts.append(("staging and bounce buffers", buffers))
    parts.append(("codec scratch", Footprint(host_bytes=scratch_total)))
    check_fit(spec.hardware, parts, machine_room(data_dir if durable else out), reusable_disk)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(rc.codec_threads)  # pinned before the fit check measures the model's rate
    try:
        vram = sum(t.capacity_bytes for t in usable if t.medium == "cuda")
        compute = prepare_compute(cfg, spec, rc, vram)
    except BaseException:
        torch.set_num_threads(threads_before)
        raise

    # allocate
    codec_by_name: dict[str, Codec] = {}
    codecs: list[Codec | None] = []
    for t in spec.tiers:
        if not t.usable:
            codecs.append(None)
            continue
        if t.codec not in codec_by_name:
            codec_by_name[t.codec] = make_codec(t.codec, elements, cfg.codec)
        codecs.append(codec_by_name[t.codec])
    for stale in (data_dir.glob("*.manifest.tmp") if durable else []):
        stale.unlink()
    stores: list[Store | None] = [None] * len(spec.tiers)
    sampler: TelemetrySampler | None = None
    progress_at = [0]
    summary: dict[str, Any] = {}
    try:
        for t in usable:
            stores[t.index] = store_class(t.medium)(t, settings)
        staging = StagingPool(staging_bytes, pinned)
        h = Hierarchy(spec, record_moves=True)
        manifests = {}
        for t in durable:
            st = stores[t.index]
            assert st is not None
            header = {
                "layout_hash": config_hash(layouts[t.index]),
                "layout": layouts[t.index],
                "tier": t.name,
                "slots": st.slots,
                "row_bytes": st.row_bytes,
            }
            manifests[t.index] = Manifest(manifest_path(data_dir, t.name), header, st)
        executor = Executor(
            h,
            stores,
            codecs,
            birth_source(compute, cfg, spec),
            staging,
            scratch_bytes,
            rc.integrity,
            manifests,
            rc.manifest_interval_s,
        )
        recovery: dict[str, Any] = {}
        lost: list[Corruption] = []
        for k, entries in found.items():
            st = stores[k]
            assert st is not None
            rec = _recover(k, st, entries, staging, h, executor, manifests[k], executor._stride(k))
            assert rec.lost is not None
            lost.extend(rec.lost)
            recovery[st.name] = {
                "manifest_blocks": len(entries),
                "resumed_blocks": rec.resumed,
                "lost_blocks": len(rec.lost),
                "over_watermark_blocks": rec.over_watermark,
            }
            if rec.over_watermark:
                notes.append(
                    f"{rec.over_watermark} blocks recovered in tier {st.name} did not fit under its high "
                    "watermark and were dropped"
                )
        preloaded = list(h.used)
        sampler = TelemetrySampler(rc.telemetry_interval_s)
        sampler.start()
        io = TierIO(executor, pinned=compute.device.type == "cuda")
        prefix = hits = None
        if compute.model is not None and spec.reuse == "prefix":
            prefix = PrefixEngine(compute.model, spec, h, io, compute.clock, rc.prefill_chunk_tokens)
        else:
            hits = HitReader(h, io)
        loop = serve_workload(
            spec,
            workload,
            h,
            executor,
            rc,
            int(cfg.output.timeseries_points),
            staging_bytes,
            reserve,
            worst_moves_per_access(spec),
            compute.clock if compute.mode == "model" else None,
            prefix,
            hits,
            progress,
            lambda n: progress_at.__setitem__(0, n),
        )
        try:
            executor.commit()
        except DiskFullError as err:  # the disk is still full: the manifest on disk stays the last one committed
            loop.fault = loop.fault or err
        telemetry = sampler.stop()
        sampler = None
        if loop.fault is None:
            executor.verify()
            h.verify()
        summary = _summary(cfg, spec, workload, h, executor, io, compute, loop, stores, notes, preloaded)
        summary["runtime"]["data_dir"] = str(data_dir) if durable else None
        summary["runtime"]["persistence"] = {
            "manifests": {manifests[k].store.name: str(m.path) for k, m in manifests.items()},
            "commits": {manifests[k].store.name: m.commits for k, m in manifests.items()},
            "resume": rc.resume,
            "recovered": recovery,
            "lost": [vars(c) for c in lost],
        }
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        raise Interrupted(_interrupted(rc, data_dir, durable, progress_at[0], stores)) from None
    finally:
        torch.set_num_threads(threads_before)
        if sampler is not None:
            sampler.stop()
        for st in stores:
            if st is not None:
                st.close()
        if durable and rc.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)

    if durable and rc.data_dir is None:  # nobody can resume from the run folder's own data: don't keep it
        summary["runtime"]["persistence"]["removed"] = True
        summary["notes"].append(
            f"the file tiers' slabs lived in {data_dir} and were removed at the end; set runtime.data_dir "
            "to keep them for a later runtime.resume=true"
        )
    fault: RunFault | None = loop.fault
    bad = lost + executor.corruptions
    if fault is None and bad:
        first = bad[0]
        fault = IntegrityFault(
            f"{len(bad)} blocks were found corrupted or lost ({len(lost)} on resume, "
            f"{len(executor.corruptions)} on read; first: block {first.block} in tier {first.tier} slot "
            f"{first.slot}, {first.reason}); none was served, each is recomputed when needed, and all "
            f"are listed in {out / 'summary.json'}"
        )
    if fault is not None:
        summary["fault"] = str(fault)
    series_frame = loop.series.frame(spec)
    write_results(
        out, summary, {"timeseries": series_frame, "requests": loop.requests, "telemetry": telemetry}
    )
    return RuntimeResult(spec, summary, loop.series, loop.requests, telemetry, out, fault)


def _interrupted(
    rc: RuntimeSettings, data_dir: Path, durable: list[TierSpec], at: int, stores: list[Store | None]
) -> str:
    """The one line an interrupted run ends with: where it stopped, what was kept, what was removed."""
    memory = [st.name for st in stores if st is not None and not st.durable]
    removed = [f"the memory tiers' slabs ({', '.join(memory)})"] if memory else []
    kept = "no results (summary.json and the parquet files were not written)"
    if durable and rc.data_dir is None:
        removed.append(f"the file tiers' data in {data_dir}")
    elif durable:
        kept += f"; kept {data_dir}: its manifests list the blocks committed so far, for runtime.resume=true"
    return f"interrupted at request {at}: {kept}; removed {' and '.join(removed) or 'nothing'}"


# ---------------------------------------------------------------------------- the summary
def _link_usage(measured: list[dict[str, Any]], makespan_s: float) -> list[dict[str, Any]]:
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


def _summary(
    cfg: Any,
    spec: Spec,
    workload: Any,
    h: Hierarchy,
    executor: Executor,
    io: TierIO,
    compute: Compute,
    loop: ServeResult,
    stores: list[Store | None],
    notes: list[str],
    preloaded: list[int],
) -> dict[str, Any]:
    """The common summary, with the runtime's clock and what it measured."""
    run_notes = list(notes)
    for st in stores:
        if st is not None and st.medium == "shm":
            run_notes.append(
                f"tier {st.name} is POSIX shared memory (no GPU here): host memory, not page-locked "
                "and not GPU-visible"
            )
    if compute.mode == "model":
        model = compute.describe(str(cfg.payload.name))
        run_notes.append(f"the engine's {model['kind']} has {model['weights']}")
    else:
        run_notes.append(compute.describe(str(cfg.payload.name))["weights"])
    if loop.staging_grown:
        run_notes.append(f"the staging pool grew to {loop.staging_grown} bytes for an access with many moves")
    summary = build_summary(
        "runtime",
        cfg,
        spec,
        h,
        loop.totals,
        workload=workload.describe(),
        elapsed_s=loop.elapsed_s,
        resolved=resolved_config(cfg),
        notes=run_notes,
    )
    for row, k in zip(summary["tiers"], range(len(spec.tiers)), strict=True):
        if preloaded[k]:
            row["writes"] -= preloaded[k]
            row["resumed_blocks"] = preloaded[k]
    summary["ttft_s"] = latency_percentiles(loop.ttft_s)
    summary["latency_s"] = summary["ttft_s"]
    summary["makespan_s"] = loop.elapsed_s
    measured = executor.measured()
    summary["link_usage"] = _link_usage(measured["links"], loop.elapsed_s)
    names = [t.name for t in spec.tiers]
    req = loop.requests[~loop.requests["refused"]]
    measured["engine"] = {
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
    summary["measured"] = measured
    summary["model"] = compute.describe(str(cfg.payload.name))
    gpu = GpuMemoryProbe()
    summary["runtime"] = {
        "stores": [st.describe() for st in stores if st is not None],
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
    }
    if loop.fault is not None:
        summary["complete"] = False
        summary["stopped_at_request"] = loop.stopped_at_request
        summary["notes"].append(
            f"the run stopped at request {loop.stopped_at_request}: its moves were undone, and the counts "
            "include that request's decisions"
        )
    return summary


__all__ = ["ExoError", "RuntimeResult", "check_media", "check_runtime_keys", "run_runtime"]
