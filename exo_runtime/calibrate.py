"""Calibration: measure this host's links and codecs as the runtime really uses them -> a profile.

A link between two tiers is measured with the runtime's own stores for the two media: a block is
copied the way the executor moves one (:func:`~exo_runtime.stores.transfer.copy_path`: straight
between two host slabs, or through an aligned bounce row when the file tier is one side) — one block
per operation, over slots in shuffled order so that no two copies coalesce into one, and as the
executor copies in a run's steady state: with ``runtime.integrity`` on, a row copied straight out of a
slab is first checksummed in place, untimed (which leaves it in the CPU's cache), and a destination
row in host memory is read first, untimed (the slot a victim left in the same batch, just read to
copy the victim out). At each block size, ``bytes_per_size``
bytes are copied in each direction, best of ``repeats``; the bandwidth at that size is bytes /
seconds. Across sizes, the time of one block is fitted (least squares, relative error) as ``latency + bytes /
bandwidth``, in each direction: the profile's ``latency_us`` is that intercept and ``bandwidth_gbps``
that asymptote from ``src`` to ``dst``, and ``reverse_latency_us`` / ``reverse_bandwidth_gbps`` the
other direction's. Codecs are timed encoding and decoding float32 blocks (GB/s of float32 bytes, 4
per element), one block per call within the executor's own steps for a block that changes codec
(:func:`measure_codecs`), on ``runtime.codec_threads`` CPU threads, as ``exo-run`` runs them.

The engine's own costs around the prefill — scheduling per block, loading the cached prefix out of
the top tier, storing new KV into it — are measured for the config's top tier, codec and block size
by :mod:`exo_runtime.engine.calibrate_engine` and written as the profile's ``engine`` section
(``copies: host``: exo-run's thread applies a request's moves itself, before its prefill). Each link's
per-block cost is the fitted per-copy intercept above (``block_us``); no per-batch latency is measured
apart from it, so ``latency_us`` is left at a 0.01 us floor, and the bytes go at ``bandwidth_gbps``.

The profile YAML keeps the template's tiers and writes the measured links and codec throughputs,
with every per-size figure in its header comments. It opens with ``defaults: [base_hardware,
_self_]``, which Hydra resolves in any folder of its search path, so that
``hardware=calibrated/<name>`` is checked against the schema like every shipped profile. By default it
is written under the user's config folder (``~/.config/exo/hardware/calibrated/``), which the console
scripts add to Hydra's search path (:mod:`exo_sim.cli.user_config`).
"""

from __future__ import annotations

import platform
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from exo_runtime.allocator import keep_freed_memory
from exo_runtime.buffers import StagingPool, align_up
from exo_runtime.codecs import codec_names, make_codec
from exo_runtime.engine.calibrate_compute import (
    EncodeCalibration,
    PrefillCalibration,
    calibrate_encode,
    calibrate_prefill,
    check_encode_grid,
)
from exo_runtime.engine.calibrate_engine import EngineFigures, measure_engine
from exo_runtime.integrity import row_crcs
from exo_runtime.nvml import GpuMemoryProbe
from exo_runtime.stores import Store, StoreSettings, store_class
from exo_runtime.stores.transfer import copy_path
from exo_sim.cli.user_config import user_config_dir
from exo_sim.config import CodecMixConfig
from exo_sim.errors import ConfigError, ExoError
from exo_sim.spec import TierSpec

ProgressFn = Callable[[str], None]

LATENCY_FLOOR_US = 0.01
"""A calibrated link's per-transfer latency: not measured apart from each block's own cost (``block_us``)."""


@dataclass
class CopyMeasurement:
    """One direction of one link at one block size."""

    src: str
    dst: str
    src_medium: str
    dst_medium: str
    block_bytes: int
    blocks: int
    seconds: float

    @property
    def bandwidth_gbps(self) -> float:
        """Bytes copied per nanosecond (GB/s)."""
        return self.blocks * self.block_bytes / self.seconds / 1e9

    @property
    def per_block_us(self) -> float:
        """Microseconds per block."""
        return self.seconds / self.blocks * 1e6


def _tier(name: str, medium: str, block_bytes: int, blocks: int) -> TierSpec:
    return TierSpec(
        index=0,
        name=name,
        medium=medium,
        codec="fp32",
        policy="lru",
        capacity_bytes=blocks * block_bytes,
        block_bytes=block_bytes,
        block_tokens=1,
        capacity_blocks=blocks,
        high_blocks=blocks,
        low_blocks=blocks,
    )


def make_store(name: str, medium: str, block_bytes: int, blocks: int, data_dir: Path) -> Store:
    """A store of ``blocks`` slots of ``block_bytes`` on ``medium`` (for measurements)."""
    settings = StoreSettings(data_dir=data_dir, prefault=True, spare_fraction=0.0, tag=f"exo-cal-{id(data_dir)}")
    return store_class(medium)(_tier(name, medium, block_bytes, blocks), settings)


def raw_copy(
    src: Store,
    dst: Store,
    staging: StagingPool,
    blocks: int,
    repeats: int,
    seed: int = 0,
    check_source: bool = False,
    warm_destination: bool = False,
) -> float:
    """Best time (s) to copy ``blocks`` blocks from ``src`` to ``dst``, one block per copy.

    Each block takes the path the executor takes between these stores (:func:`copy_path`): straight
    from the source slab's row, straight into the destination slab's row, or through a bounce row.
    Slots are taken in a shuffled order (different in source and destination) so that no copy
    coalesces with the next; the stores' slots must already be allocated by the caller. With
    ``check_source``, a row copied straight out of the source slab is first checksummed in place,
    untimed, as the executor checks it (``runtime.integrity`` on) — which leaves it in the CPU's cache.
    With ``warm_destination``, a destination row in host memory is read first, untimed: in a run's
    steady state a block copied into a full tier takes the slot its victim left in the same batch,
    which the executor has just read to copy the victim out.
    """
    rng = random.Random(seed)
    s_slots = list(range(blocks))
    d_slots = list(range(blocks))
    stride = align_up(max(src.row_bytes, dst.row_bytes), max(src.row_align, dst.row_align))
    row = staging.rows(1, stride)
    path = copy_path(src, dst)
    s_view, d_view = src.host_view(), dst.host_view()
    cuda = src.device == "cuda" or dst.device == "cuda"
    best = float("inf")
    for _ in range(repeats):
        rng.shuffle(s_slots)
        rng.shuffle(d_slots)
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter_ns()
        unchecked = 0
        for s, d in zip(s_slots, d_slots, strict=True):
            if path == "source" and s_view is not None:
                if check_source or (warm_destination and d_view is not None):
                    t1 = time.perf_counter_ns()
                    if check_source:
                        row_crcs(s_view, src.slot_bytes, [s])
                    if warm_destination and d_view is not None:
                        row_crcs(d_view, dst.slot_bytes, [d])
                    unchecked += time.perf_counter_ns() - t1
                dst.write((d,), s_view[s : s + 1])
            elif path == "destination" and d_view is not None:
                src.read((s,), d_view[d : d + 1])
                src.synchronize()
            else:
                src.read((s,), row)
                src.synchronize()
                dst.write((d,), row)
            dst.synchronize()
        best = min(best, (time.perf_counter_ns() - t0 - unchecked) / 1e9)
    staging.reset()
    return best


def measure_link(
    src_name: str,
    src_medium: str,
    dst_name: str,
    dst_medium: str,
    block_bytes: int,
    total_bytes: int,
    repeats: int,
    data_dir: Path,
    check_source: bool = False,
    warm_destination: bool = False,
) -> tuple[CopyMeasurement, CopyMeasurement]:
    """Copy ``total_bytes`` in blocks of ``block_bytes`` each way between two fresh stores.

    ``check_source``, ``warm_destination``: copy as the executor does in a run (:func:`raw_copy`).
    """
    blocks = max(4, total_bytes // block_bytes)
    staging = StagingPool(align_up(block_bytes) + 4096, torch.cuda.is_available())
    a = make_store(src_name, src_medium, block_bytes, blocks, data_dir)
    try:
        b = make_store(dst_name, dst_medium, block_bytes, blocks, data_dir)
        try:
            for st in (a, b):
                for _ in range(blocks):
                    st.allocate()
            fill = staging.rows(1, align_up(max(a.row_bytes, b.row_bytes)))
            fill.copy_(torch.randint(0, 256, fill.shape, dtype=torch.uint8))
            for s in range(blocks):
                a.write((s,), fill)
                b.write((s,), fill)
            staging.reset()
            there = raw_copy(a, b, staging, blocks, repeats, seed=1, check_source=check_source,
                             warm_destination=warm_destination)
            back = raw_copy(b, a, staging, blocks, repeats, seed=2, check_source=check_source,
                            warm_destination=warm_destination)
        finally:
            b.close()
    finally:
        a.close()
    return (
        CopyMeasurement(src_name, dst_name, src_medium, dst_medium, block_bytes, blocks, there),
        CopyMeasurement(dst_name, src_name, dst_medium, src_medium, block_bytes, blocks, back),
    )


def fit_link(points: list[CopyMeasurement]) -> tuple[float, float]:
    """``(bandwidth_gbps, latency_us)`` from per-block times over sizes: ``t = latency + bytes/bw``.

    The residuals are relative (each size weighted by ``1 / t``): a timing's noise is a fraction of
    it, and unweighted the largest size's noise alone would set the latency. With fewer than two
    sizes, or a fit that is not physical (a non-positive slope), the bandwidth is the one measured at
    the largest size and the latency the smallest per-block time measured (an upper bound). A fitted
    latency below 0.01 µs is reported as 0.01 µs (profiles need it positive).

    Raises:
        ValueError: no measurements, or one with no blocks or a time that is not > 0.
    """
    if not points or not all(p.blocks > 0 and p.seconds > 0 for p in points):
        raise ValueError(f"fit_link needs measurements of > 0 blocks in > 0 s, got {len(points)} measurement(s)")
    sizes = np.array([p.block_bytes for p in points], dtype=np.float64)
    per_block_s = np.array([p.seconds / p.blocks for p in points], dtype=np.float64)
    largest = max(points, key=lambda p: p.block_bytes)
    if len(set(sizes.tolist())) >= 2:
        slope, intercept = np.polyfit(sizes, per_block_s, 1, w=1.0 / per_block_s)
        if slope > 0:
            return 1.0 / slope / 1e9, max(intercept * 1e6, 0.01)
    return largest.bandwidth_gbps, max(float(per_block_s.min()) * 1e6, 0.01)


EVICT_BYTES = 32 * 2**20
"""Bytes written, untimed, between two timed codec calls or births: more than the CPU's per-core
caches, as the executor's copies and checksums between two such calls in a run leave them."""


def evict_caches(junk: torch.Tensor) -> None:
    """Write every byte of ``junk`` (a buffer of :data:`EVICT_BYTES`), pushing other data out of cache."""
    junk.add_(1)


def measure_codecs(
    elements_total: int, block_elements: int, mix: CodecMixConfig, repeats: int
) -> dict[str, tuple[float, float]]:
    """Encode and decode GB/s (float32 bytes) of every codec, best of ``repeats``.

    Timed within the executor's own steps for a block that changes codec, so that caches and the
    allocator are as in a run: each block is copied out of a slab of encoded blocks into a bounce
    row, checksummed, decoded into a float32 scratch row (timed), encoded into another bounce row
    (timed), checksummed, and copied into another slot — one block of ``block_elements`` per call,
    ``elements_total`` elements per round, in shuffled order. Run on the caller's torch threads
    (:func:`calibrate` sets ``runtime.codec_threads``, as ``exo-run`` does).
    """
    per = max(1, min(block_elements, elements_total))
    n = max(1, elements_total // per)
    gen = torch.Generator().manual_seed(0)
    rng = random.Random(0)
    source = torch.randn((8, per), generator=gen)
    scratch = torch.empty((1, per), dtype=torch.float32)
    out: dict[str, tuple[float, float]] = {}
    for name in codec_names():
        codec = make_codec(name, per, mix)
        slots = max(n, 8, min(4 * n, (64 * 2**20) // max(1, codec.nbytes)))
        slab = torch.empty((slots, codec.nbytes), dtype=torch.uint8)
        for i in range(slots):
            codec.encode(source[i % 8 : i % 8 + 1], slab[i : i + 1])
        rows_in = torch.empty((1, codec.nbytes), dtype=torch.uint8)
        rows_out = torch.empty((1, codec.nbytes), dtype=torch.uint8)
        s_np, in_np, out_np = slab.numpy(), rows_in.numpy(), rows_out.numpy()
        order = list(range(slots))
        enc = dec = float("inf")
        for _ in range(repeats + 1):  # the first round warms up
            rng.shuffle(order)
            e = d = 0
            for k in range(n):
                i, j = order[k], order[(k + slots // 2) % slots]
                in_np[:] = s_np[i : i + 1]
                row_crcs(rows_in, codec.nbytes)
                t0 = time.perf_counter_ns()
                codec.decode(rows_in, scratch)
                t1 = time.perf_counter_ns()
                codec.encode(scratch, rows_out)
                t2 = time.perf_counter_ns()
                row_crcs(rows_out, codec.nbytes)
                s_np[j : j + 1] = out_np
                e, d = e + t2 - t1, d + t1 - t0
            enc, dec = min(enc, e), min(dec, d)
        nbytes = 4 * n * per
        out[name] = (nbytes / enc, nbytes / dec)
    return out


@dataclass
class Calibration:
    """What ``exo-calibrate`` measured and the profile it wrote."""

    name: str
    path: Path
    copies: list[CopyMeasurement]
    links: list[dict[str, Any]]
    codecs: dict[str, tuple[float, float]]
    text: str
    engine: EngineFigures | None = None
    """The engine's costs around the prefill, for the config's top tier, codec and block size."""
    prefill: PrefillCalibration | None = None
    """The engine's measured prefill cost (``None``: not calibrated, see ``prefill_note``)."""
    prefill_note: str = ""
    encode: EncodeCalibration | None = None
    """A ``rag_chunk`` payload's measured encoder cost (``None`` for other payloads)."""


def calibrate(cfg: Any, out_dir: Path, progress: ProgressFn | None = None) -> Calibration:
    """Measure the links of ``cfg.hardware`` and every codec; write the profile ``<name>.yaml``.

    The profile goes to ``runtime.calibrate.out_dir`` if set, else to the user's config folder
    (``~/.config/exo/hardware/calibrated/``, see :mod:`exo_sim.cli.user_config`), which every console
    script searches, so ``hardware=calibrated/<name>`` loads it; never into the source tree unasked.

    Args:
        cfg: the composed root config (``hardware`` is the template, ``runtime.calibrate`` the knobs).
        out_dir: the run folder (temporary slab files go under it unless ``runtime.data_dir`` is set).
        progress: told what is being measured.

    Raises:
        ConfigError / MachineError: a bad knob, or a medium this machine lacks.
    """
    keep_freed_memory()  # as exo-run does: the engine and its calibration under one allocator
    cal = cfg.runtime.calibrate
    sizes = [int(s) for s in cal.block_sizes_bytes]
    if not sizes or any(s <= 0 for s in sizes):
        raise ConfigError("runtime.calibrate.block_sizes_bytes", f"must be positive sizes, got {sizes}")
    for key in ("bytes_per_size", "repeats", "codec_elements"):
        if int(getattr(cal, key)) <= 0:
            raise ConfigError(f"runtime.calibrate.{key}", f"must be > 0, got {getattr(cal, key)}")
    rag = str(cfg.payload.kind) == "rag_chunk"
    if rag:
        check_encode_grid(list(cal.encode_batch_chunks), list(cal.encode_chunk_tokens))
    hw = cfg.hardware
    tiers = {t.name: t for t in hw.tiers}
    if not hw.links:
        raise ConfigError("hardware.links", f"of profile {hw.name} is empty: there is no link to measure")
    from exo_runtime.run import NO_GPU_HINT

    for t in hw.tiers:
        reason = store_class(str(t.medium)).unavailable()
        if reason:
            from exo_runtime.errors import MachineError

            raise MachineError(f"hardware {hw.name} has a {t.medium} tier ({t.name}) but {reason}; {NO_GPU_HINT}")
    name = str(cal.name or platform.node().split(".")[0] or "host")
    default_dir = user_config_dir() / "hardware" / "calibrated"
    target = Path(str(cal.out_dir)) if cal.out_dir else default_dir
    base = Path(str(cfg.runtime.data_dir)) if cfg.runtime.data_dir else out_dir
    base.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="exo-calibrate-", dir=base))
    copies: list[CopyMeasurement] = []
    links: list[dict[str, Any]] = []
    try:
        for link in hw.links:
            a, b = tiers[str(link.src)], tiers[str(link.dst)]
            there: list[CopyMeasurement] = []
            back: list[CopyMeasurement] = []
            for size in sizes:
                if progress:
                    progress(f"{a.name} <-> {b.name} at {size} B")
                m1, m2 = measure_link(
                    str(a.name), str(a.medium), str(b.name), str(b.medium), size,
                    int(cal.bytes_per_size), int(cal.repeats), scratch,
                    check_source=str(cfg.runtime.integrity) != "off", warm_destination=True,
                )
                there.append(m1)
                back.append(m2)
            copies.extend(there + back)
            bw1, lat1 = fit_link(there)
            bw2, lat2 = fit_link(back)
            duplex = bool(link.duplex)
            links.append(
                {
                    "src": str(a.name),
                    "dst": str(b.name),
                    # a simplex link has one speed for both directions: the slower one's
                    "bandwidth_gbps": bw1 if duplex else min(bw1, bw2),
                    "latency_us": LATENCY_FLOOR_US,
                    "block_us": lat1 if duplex else max(lat1, lat2),
                    "reverse_bandwidth_gbps": bw2 if duplex else None,
                    "reverse_latency_us": LATENCY_FLOOR_US if duplex else None,
                    "reverse_block_us": lat2 if duplex else None,
                    "duplex": duplex,
                    "channels": int(link.channels),
                    "fits": {"down": (bw1, lat1), "up": (bw2, lat2)},
                }
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if progress:
        progress("codecs")
    threads = torch.get_num_threads()
    torch.set_num_threads(int(cfg.runtime.codec_threads))  # as exo-run runs its codecs
    prefill: PrefillCalibration | None = None
    encode: EncodeCalibration | None = None
    prefill_note = ""
    try:
        codecs = measure_codecs(int(cal.codec_elements), max(sizes) // 4, cfg.codec, int(cal.repeats))
        if rag:  # a miss re-embeds chunks: the encoder's cost, on the threads exo-run gives it
            if progress:
                progress("encoder compute")
            encode = calibrate_encode(
                cfg.payload, int(cfg.seed), int(cal.repeats), list(cal.encode_batch_chunks),
                list(cal.encode_chunk_tokens),
            )
        else:
            if progress:
                progress("prefill compute")
            try:
                prefill = calibrate_prefill(cfg.payload, int(cfg.block_tokens), int(cfg.seed), int(cal.repeats),
                                            chunk_tokens=int(getattr(cfg.runtime, "prefill_chunk_tokens", 4096)))
            except ExoError as err:
                prefill_note = f"compute not calibrated: {err}"
    finally:
        torch.set_num_threads(threads)
    if encode is not None:
        compute_lines = encode.yaml_lines()
    else:
        compute_lines = prefill.yaml_lines() if prefill is not None else [f"# {prefill_note}"]
    engine = None
    if bool(cal.engine):
        if progress:
            progress("the engine's scheduling, KV load and KV store")
        engine = measure_engine(cfg, base, int(cal.repeats))
    engine_lines = engine.yaml_lines("host") if engine is not None else [
        "# engine: not measured (runtime.calibrate.engine=false); exo-crosscheck measures it per config"]
    text = profile_yaml(name, hw, links, copies, codecs, compute_lines + engine_lines)
    path = _write(target / f"{name}.yaml", text)
    result = Calibration(
        name, path, copies, links, codecs, text, prefill=prefill, prefill_note=prefill_note, encode=encode,
        engine=engine,
    )
    return result


def _write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary name, then rename); return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def profile_yaml(
    name: str,
    hw: Any,
    links: list[dict[str, Any]],
    copies: list[CopyMeasurement],
    codecs: dict[str, tuple[float, float]],
    compute_lines: list[str] | None = None,
) -> str:
    """The calibrated profile as YAML, every measured figure in its header comments.

    ``compute_lines``: the ``compute:`` section measured by
    :func:`~exo_runtime.engine.calibrate_compute.calibrate_prefill` (or a comment saying why not).
    """
    gpu = GpuMemoryProbe().name()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Calibrated by exo-calibrate on {platform.node()} ({gpu or 'no GPU'}) at {when},",
        f"# from template hardware={hw.name}: tiers as in the template; links and codec speeds measured",
        "# through the runtime's stores, each block the way the executor copies it (one block per copy).",
        "# Per block size and direction (GB/s, us per block):",
    ]
    for c in copies:
        lines.append(
            f"#   {c.src:>8} -> {c.dst:<8} {c.block_bytes:>10} B: {c.bandwidth_gbps:8.3f} GB/s "
            f"{c.per_block_us:10.2f} us ({c.blocks} blocks)"
        )
    lines.append("# Fits t = latency + bytes / bandwidth per direction (GB/s, us); a duplex link keeps both:")
    for lk in links:
        (b1, l1), (b2, l2) = lk["fits"]["down"], lk["fits"]["up"]
        lines.append(
            f"#   {lk['src']} -> {lk['dst']}: {b1:.3f} GB/s, {l1:.2f} us; "
            f"{lk['dst']} -> {lk['src']}: {b2:.3f} GB/s, {l2:.2f} us"
        )
    lines += [
        "defaults:",
        "  - base_hardware",
        "  - _self_",
        f"name: {name}",
        f"description: calibrated on {platform.node()} from {hw.name}",
        "tiers:",
    ]
    for t in hw.tiers:
        cap = (
            f"capacity_bytes: {int(t.capacity_bytes)}"
            if t.capacity_bytes is not None
            else f"capacity_blocks: {int(t.capacity_blocks)}"
        )
        lines.append(f"  - {{name: {t.name}, medium: {t.medium}, {cap}}}")
    lines.append("links:")
    for lk in links:
        reverse = ""
        if lk.get("reverse_bandwidth_gbps") is not None:
            reverse = (
                f", reverse_bandwidth_gbps: {lk['reverse_bandwidth_gbps']:.4f}, "
                f"reverse_latency_us: {lk['reverse_latency_us']:.3f}, reverse_block_us: {lk['reverse_block_us']:.3f}"
            )
        lines.append(
            f"  - {{src: {lk['src']}, dst: {lk['dst']}, bandwidth_gbps: {lk['bandwidth_gbps']:.4f}, "
            f"latency_us: {lk['latency_us']:.3f}, block_us: {lk['block_us']:.3f}, "
            f"duplex: {str(lk['duplex']).lower()}, channels: {lk['channels']}{reverse}}}"
        )
    lines.append("codec_throughput:")
    for codec, (enc, dec) in sorted(codecs.items()):
        lines.append(f"  {codec}: {{encode_gbps: {enc:.4f}, decode_gbps: {dec:.4f}}}")
    gpu = getattr(hw, "gpu", None)
    if gpu is not None:  # the template's KV budget rules (exo_sim/kv_budget.py), carried as they are
        workspace = "null" if gpu.workspace_bytes is None else int(gpu.workspace_bytes)
        lines.append(
            f"gpu: {{memory_utilization: {float(gpu.memory_utilization)}, workspace_bytes: {workspace}, "
            f"max_num_batched_tokens: {int(gpu.max_num_batched_tokens)}, max_num_seqs: {int(gpu.max_num_seqs)}, "
            f"weights_on_gpu: {str(bool(gpu.weights_on_gpu)).lower()}, kv_pool: {str(bool(gpu.kv_pool)).lower()}}}"
        )
    lines += compute_lines or []
    return "\n".join(lines) + "\n"
