"""What ``exo-run``'s one thread pays besides copies and codecs, measured: the serial executor's costs.

``exo-calibrate`` measures links and codecs into a hardware profile; the timed model's serial
executor (:mod:`exo_sim.sim.host`) also needs what the runtime's thread spends around them. Each is
measured here the way the runtime spends it:

* **checksums** — :func:`~exo_runtime.integrity.row_crcs` on blocks of every calibration size, of a
  block just copied into a buffer (in cache) and of a slab's row in place; fitted like a link;
* **births** — the time to generate one block of a payload (:class:`~exo_runtime.payload_data.BlockFactory`:
  seeded data, the runtime's stand-in for recomputing a block — not a model's prefill);
* **manifest commits** — :meth:`~exo_runtime.manifest.Manifest.commit` of a file tier holding few
  and many blocks, a few writes before each (so the drive has something to flush); a fixed cost and
  a cost per block held, fitted from medians;
* **bookkeeping** — the decision core's and the executor's own Python work per request, reference,
  batch and move. It is what the runtime spends beyond everything above: the runtime runs a fixed
  set of small calibration workloads (tiny fp32 blocks on the profile's own media, so copies and
  codecs cost next to nothing; reads that all hit, and reads that thrash, one to sixteen per
  request), the timed model runs the same workloads with every figure above, and the runtime's
  extra time is fitted (non-negative least squares) as ``request_us x requests + reference_us x
  references + batch_us x batches + move_us x moves``. These workloads are fixed and are not the
  cross-check's: nothing is fitted to a config being predicted.

:func:`sim_yaml` writes all of it as a ``conf/sim/`` option (``sim=calibrated/<name>``).
"""

from __future__ import annotations

import math
import platform
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from exo_runtime.integrity import row_crcs
from exo_runtime.manifest import Manifest
from exo_runtime.payload_data import BlockFactory
from exo_runtime.stores import StoreSettings, store_class
from exo_sim.compute import nnls
from exo_sim.config import (
    CodecMixConfig,
    CodecThroughputConfig,
    ExoConfig,
    HardwareConfig,
    HierarchyConfig,
    HostCostConfig,
    LinkConfig,
    PayloadConfig,
    PolicyMixConfig,
    SimConfig,
    TierConfig,
)
from exo_sim.spec import TierSpec
from exo_sim.workloads.zipf import ZipfWorkloadConfig


def fit_rate(sizes_bytes: list[int], per_item_s: list[float]) -> tuple[float, float]:
    """``(bytes_per_s, latency_s)`` of ``t = latency + bytes / rate`` by least squares over sizes.

    The residuals are relative (each point weighted by ``1 / t``): a timing's noise is a fraction of
    it, and unweighted the largest size's noise alone would set the latency. With fewer than two
    sizes or a non-positive slope: the rate at the largest size, latency 0. A negative intercept is
    reported as 0.

    Raises:
        ValueError: no sizes, sizes and times of different lengths, or a time that is not > 0.
    """
    if not sizes_bytes or len(sizes_bytes) != len(per_item_s):
        raise ValueError(f"fit_rate needs one time per size, got {len(sizes_bytes)} sizes and {len(per_item_s)} times")
    if not all(t > 0 for t in per_item_s):
        raise ValueError(f"fit_rate needs every time > 0 s, got {per_item_s}")
    if len(set(sizes_bytes)) >= 2:
        t = np.asarray(per_item_s, float)
        slope, intercept = np.polyfit(np.asarray(sizes_bytes, float), t, 1, w=1.0 / t)
        if slope > 0:
            return 1.0 / float(slope), max(float(intercept), 0.0)
    i = int(np.argmax(sizes_bytes))
    return sizes_bytes[i] / per_item_s[i], 0.0


# ---------------------------------------------------------------------------- checksums
@dataclass
class ChecksumMeasurement:
    """CRC-32 of ``blocks`` blocks of ``block_bytes`` (:func:`row_crcs`, one call per block), best time.

    ``hot``: each block was just copied into the one buffer it is checked in (as the executor checks
    what it has just read, encoded or generated); otherwise it is checked in place in a large slab
    (as the executor checks a block it copies straight out of a host-memory tier).
    """

    block_bytes: int
    blocks: int
    seconds: float
    hot: bool = True

    @property
    def gbps(self) -> float:
        """Bytes checksummed per nanosecond."""
        return self.blocks * self.block_bytes / self.seconds / 1e9


def measure_checksum(sizes: list[int], total_bytes: int, repeats: int) -> list[ChecksumMeasurement]:
    """Time :func:`row_crcs` (the runtime's checksum) on blocks of each size, hot and in place.

    The blocks come from a slab of random bytes of ``total_bytes`` (at most 256 MiB, at least four
    blocks), taken in a shuffled order; only the checksum is timed. Best of ``repeats`` rounds.
    """
    out = []
    gen = torch.Generator().manual_seed(0)
    rng = random.Random(0)
    for size in sizes:
        n = max(4, min(total_bytes, 256 * 2**20) // size)
        slab = torch.randint(0, 256, (n, size), dtype=torch.uint8, generator=gen)
        row = torch.empty((1, size), dtype=torch.uint8)
        order = list(range(n))
        for hot in (True, False):
            best = math.inf
            for _ in range(repeats + 1):  # the first round warms up
                rng.shuffle(order)
                spent = 0
                for i in order:
                    if hot:
                        row.copy_(slab[i : i + 1])
                        t0 = time.perf_counter_ns()
                        row_crcs(row, size)
                    else:
                        t0 = time.perf_counter_ns()
                        row_crcs(slab, size, [i])
                    spent += time.perf_counter_ns() - t0
                best = min(best, spent / 1e9)
            out.append(ChecksumMeasurement(size, n, best, hot))
        del slab
    return out


# ---------------------------------------------------------------------------- births
EVICT_BYTES = 32 * 2**20
"""Bytes written, untimed, between two timed births: more than the CPU's per-core caches, as the
executor's copies and checksums between two births in a run leave them."""


def measure_births(payload: Any, block_tokens: int, seed: int, repeats: int, budget_bytes: int = 2**26) -> float:
    """Seconds to give birth to one block of ``payload`` (seeded generation, as the runtime does).

    Blocks are generated one per call into a float32 row (and raw bytes, for RAG chunks), with the
    caches flushed between calls as a run's other work flushes them (an untimed write of
    :data:`EVICT_BYTES`), about ``budget_bytes`` of float32 data per round; best of ``repeats``
    rounds, per block.
    """
    factory = BlockFactory(payload, block_tokens, seed)
    elements = max(1, factory.elements)
    n = max(4, min(256, budget_bytes // (4 * elements)))
    x = torch.empty((1, elements), dtype=torch.float32)
    raw = torch.empty((1, max(1, factory.raw_bytes)), dtype=torch.uint8) if factory.raw_bytes else None
    junk = torch.zeros(EVICT_BYTES, dtype=torch.uint8)
    best = math.inf
    for r in range(repeats + 1):  # the first round warms up
        spent = 0
        for b in range(n):
            junk.add_(1)
            t0 = time.perf_counter_ns()
            factory.birth([r * n + b], x, raw)
            spent += time.perf_counter_ns() - t0
        best = min(best, spent / 1e9)
    return best / n


# ---------------------------------------------------------------------------- manifest commits
def measure_commit(data_dir: Path, block_bytes: int = 65536, entries: tuple[int, ...] = (64, 2048),
                   trials: int = 9) -> tuple[float, float]:
    """``(fixed_s, per_entry_s)`` of a file tier's manifest commit, from the median of ``trials``.

    For each size a file store of that many slots is filled (each slot written once and recorded);
    before each commit eight slots are rewritten, as a run's batches do between commits. The first
    three commits are not timed (the drive may still be flushing what was written before).
    """
    medians = []
    for n in entries:
        folder = Path(tempfile.mkdtemp(prefix="exo-commit-", dir=data_dir))
        tier = TierSpec(0, "commit", "file", "fp32", "lru", n * block_bytes, block_bytes, 1, n, n, n)
        store = store_class("file")(tier, StoreSettings(data_dir=folder, spare_fraction=0.0, tag="exo-commit"))
        try:
            manifest = Manifest(folder / "commit.manifest", {"calibration": True}, store)
            row = torch.zeros((1, store.row_bytes + 4096), dtype=torch.uint8)
            offset = (-row.data_ptr()) % 4096
            rows = row[:, offset : offset + store.row_bytes]
            for b in range(n):
                slot = store.allocate()
                store.write([slot], rows)
                manifest.put(b, slot, 0, 0, 0.0, True)
            times = []
            for _ in range(trials + 3):
                for slot in range(min(8, n)):
                    store.write([slot], rows)
                t0 = time.perf_counter_ns()
                manifest.commit()
                times.append((time.perf_counter_ns() - t0) / 1e9)
            medians.append(statistics.median(times[3:]))
        finally:
            store.close()
            shutil.rmtree(folder, ignore_errors=True)
    return fit_commit(entries, medians)


def fit_commit(entries: tuple[int, ...], medians_s: list[float]) -> tuple[float, float]:
    """``(fixed_s, per_entry_s)`` of ``t = fixed + per_entry x entries``, through the first and last point.

    Both are clipped at 0 (a commit cannot take negative time); with one point the whole time is
    fixed. Points between the first and the last are not used.

    Raises:
        ValueError: no points, or entries and medians of different lengths.
    """
    if not entries or len(entries) != len(medians_s):
        raise ValueError(f"fit_commit needs one median per entry count, got {len(entries)} and {len(medians_s)}")
    per_entry = 0.0
    if len(entries) > 1 and entries[-1] != entries[0]:
        per_entry = max(0.0, (medians_s[-1] - medians_s[0]) / (entries[-1] - entries[0]))
    return max(0.0, medians_s[0] - per_entry * entries[0]), per_entry


# ---------------------------------------------------------------------------- bookkeeping
CALIBRATION_WORKLOADS: tuple[tuple[str, int, int, int], ...] = (
    # (name, objects as a multiple of the hierarchy's blocks (0: a quarter of the top tier), accesses, per request)
    ("hits, 1 per request", 0, 3000, 1),
    ("hits, 4 per request", 0, 4000, 4),
    ("hits, 16 per request", 0, 8000, 16),
    ("thrash, 1 per request", 4, 2400, 1),
    ("thrash, 4 per request", 4, 3200, 4),
    ("thrash, 16 per request", 4, 4800, 16),
)
"""The fixed calibration workloads (Zipf(0.6) over tiny blocks) the bookkeeping is fitted on."""

CALIBRATION_TOP_BLOCKS = 8
"""Blocks of the calibration hierarchy's top tier; each tier below holds twice the one above."""


@dataclass
class BookkeepingRun:
    """One calibration workload: its counts, the runtime's makespan and the model's without bookkeeping."""

    name: str
    requests: int
    references: int
    batches: int
    moves: int
    runtime_s: float
    model_s: float

    @property
    def extra_s(self) -> float:
        """What the runtime spent beyond the model's figures."""
        return self.runtime_s - self.model_s


@dataclass
class Bookkeeping:
    """Fitted bookkeeping (µs) and the runs it was fitted on."""

    request_us: float = 0.0
    reference_us: float = 0.0
    batch_us: float = 0.0
    move_us: float = 0.0
    runs: list[BookkeepingRun] = field(default_factory=list)


def nonnegative_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares ``x @ beta ~ y`` with ``beta >= 0``: the optimum (:func:`exo_sim.compute.nnls`).

    Dropping the most negative column and refitting until none is negative is not enough: on data no
    non-negative ``beta`` fits exactly it can drop a column the optimum keeps.
    """
    return nnls(x, y)


def _num(value: Any, least: float = 0.0) -> float | None:
    return None if value is None else max(float(value), least)


def _calibration_cfg(
    template: Any,
    objects: int,
    accesses: int,
    per_request: int,
    links: list[dict[str, Any]],
    codecs: dict[str, tuple[float, float]],
    host: HostCostConfig,
    integrity: str,
    data_dir: Path,
) -> Any:
    """A root config on the template's media: tiny fp32 blocks, LRU, exclusive, Zipf(0.6)."""
    tiers = [
        TierConfig(name=str(t.name), medium=str(t.medium), capacity_blocks=CALIBRATION_TOP_BLOCKS * 2**i)
        for i, t in enumerate(template.tiers)
    ]
    cfg = ExoConfig(
        hardware=HardwareConfig(
            name=f"{template.name}-bookkeeping",
            tiers=tiers,
            links=[
                LinkConfig(src=str(lk["src"]), dst=str(lk["dst"]), bandwidth_gbps=float(lk["bandwidth_gbps"]),
                           latency_us=max(float(lk["latency_us"]), 0.01), duplex=bool(lk["duplex"]),
                           channels=int(lk["channels"]), reverse_bandwidth_gbps=_num(lk.get("reverse_bandwidth_gbps")),
                           reverse_latency_us=_num(lk.get("reverse_latency_us"), 0.01))
                for lk in links
            ],
            codec_throughput={c: CodecThroughputConfig(encode_gbps=float(e), decode_gbps=float(d))
                              for c, (e, d) in codecs.items()},
        ),
        payload=PayloadConfig(name="calibration", kind="kv_cache", layers=1, kv_heads=1, head_dim=8),
        codec=CodecMixConfig(name="fp32", default="fp32"),
        policy=PolicyMixConfig(name="lru", default="lru"),
        hierarchy=HierarchyConfig(mode="exclusive"),
        workload=ZipfWorkloadConfig(objects=objects, alpha=0.6, accesses=accesses,
                                            blocks_per_request=per_request),
        block_tokens=16,
        sim=SimConfig(executor="serial", demotion="sync", multi_hop="pipeline", arrival="closed_loop",
                      agents=1, think_time_s=0.0, host=host, write_requests=False),
    )
    out = OmegaConf.structured(cfg)
    out.output.progress = False
    out.runtime.integrity = integrity
    out.runtime.data_dir = str(data_dir)
    out.runtime.manifest_interval_s = host.commit_interval_s or 1.0
    out.runtime.file_spare_fraction = host.file_spare_fraction
    return out


def measure_bookkeeping(
    template: Any,
    links: list[dict[str, Any]],
    codecs: dict[str, tuple[float, float]],
    host: HostCostConfig,
    integrity: str,
    seed: int,
    data_dir: Path,
) -> Bookkeeping:
    """Fit the runtime's bookkeeping on :data:`CALIBRATION_WORKLOADS` (see the module docstring).

    Args:
        template: the hardware profile whose media the workloads run on.
        links: the links just measured (as :func:`~exo_runtime.calibrate.calibrate` has them).
        codecs: the codec throughputs just measured (GB/s encode, decode).
        host: the serial executor's other figures just measured (checksums, commits); bookkeeping zero.
        integrity: ``runtime.integrity`` (reads are checked unless ``off``).
        seed: the config's seed.
        data_dir: a folder for the file tiers' slabs (removed afterwards).
    """
    from exo_runtime.run import batch_move_limit, run_runtime
    from exo_sim.sim.run import run_sim
    from exo_sim.spec import build_spec

    total = sum(CALIBRATION_TOP_BLOCKS * 2**i for i in range(len(template.tiers)))
    runs: list[BookkeepingRun] = []
    folder = Path(tempfile.mkdtemp(prefix="exo-bookkeeping-", dir=data_dir))
    try:
        for i, (name, scale, accesses, per) in enumerate(CALIBRATION_WORKLOADS):
            objects = max(1, CALIBRATION_TOP_BLOCKS // 4) if scale == 0 else scale * total
            cfg = _calibration_cfg(template, objects, accesses, per, links, codecs, host, integrity,
                                   folder / f"data-{i}")
            cfg.seed = seed
            cfg.runtime.compute = "seeded"  # the executor's own costs: no model runs
            cfg.sim.prefill_tokens_per_s = 16 / measure_births(cfg.payload, 16, seed, 1, 2**20)
            cfg.sim.host.batch_moves = batch_move_limit(cfg, build_spec(cfg))
            rt = run_runtime(cfg, folder / f"run-{i}").summary
            shutil.rmtree(folder / f"data-{i}", ignore_errors=True)
            sim = run_sim(cfg).summary
            moves = sum(t["promotions"] + t["demotions"] + t["drops"] for t in rt["tiers"])
            moves += int(rt["recomputed_blocks"]) + int(rt["new_blocks"])
            runs.append(BookkeepingRun(name, int(rt["requests"]), int(rt["accesses"]),
                                       int(rt["runtime"]["batches"]), moves, float(rt["makespan_s"]),
                                       float(sim["makespan_s"])))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    x = np.array([[r.requests, r.references, r.batches, r.moves] for r in runs], dtype=np.float64)
    y = np.array([r.extra_s for r in runs], dtype=np.float64)
    beta = nonnegative_fit(x, y) * 1e6
    return Bookkeeping(float(beta[0]), float(beta[1]), float(beta[2]), float(beta[3]), runs)


# ---------------------------------------------------------------------------- codecs and births in a run
@dataclass
class DriveRate:
    """Blocks read from (or written to) a file tier in a run: how many, their bytes on the drive, seconds."""

    blocks: int = 0
    nbytes: int = 0
    seconds: float = 0.0

    def bandwidth_gbps(self, latency_us: float) -> float | None:
        """The bandwidth that, after ``latency_us`` per block, gives the run's mean time per block."""
        if not self.blocks or not self.nbytes:
            return None
        per_block_s = self.seconds / self.blocks - latency_us * 1e-6
        return self.nbytes / self.blocks / per_block_s / 1e9 if per_block_s > 0 else None


@dataclass
class InRunRates:
    """What runs of the runtime achieved at one block size.

    Codec speeds (GB/s of float32 bytes: encode, decode), seconds per birth, and the file tiers'
    reads and writes (``reads[tier]``, ``writes[tier]``).
    """

    codecs: dict[str, tuple[float, float]]
    birth_s: float
    runs: int
    reads: dict[str, DriveRate] = field(default_factory=dict)
    writes: dict[str, DriveRate] = field(default_factory=dict)


def measure_in_run(cfg: Any, data_dir: Path, accesses: int = 240) -> InRunRates:
    """Codec speeds and the birth time at ``cfg``'s block size, from the runtime's own meters.

    How fast a codec call or a birth runs depends on the block's size and on what the thread did
    just before (the caches, the allocator's state), so these are taken from runs of the runtime
    itself, on ``cfg``'s media, payload and block size but a fixed calibration workload (Zipf(0.6)
    over four times the blocks the hierarchy holds, ``accesses`` reads four per request, tiers of 8,
    16, 32 ... blocks), the codecs laid over the tiers so that every move re-encodes, as many runs as
    it takes to cover every codec. Nothing of the workload being predicted is used. So is a file
    tier's speed: a drive sustains less over a run's scattered reads and writes (and the flushes of
    its manifest commits) than over a burst of copies on a fresh file; each copy out of or into it is
    counted by the bytes on the drive's side.
    """
    from exo_runtime.codecs import codec_names
    from exo_runtime.run import run_runtime

    template = cfg.hardware
    n = len(template.tiers)
    names = codec_names()
    runs = math.ceil(len(names) / n)
    codecs: dict[str, tuple[float, float]] = {}
    births_s = 0.0
    births = 0
    reads: dict[str, DriveRate] = {}
    writes: dict[str, DriveRate] = {}
    folder = Path(tempfile.mkdtemp(prefix="exo-inrun-", dir=data_dir))
    try:
        for r in range(runs):
            tiers = [
                TierConfig(name=str(t.name), medium=str(t.medium), capacity_blocks=CALIBRATION_TOP_BLOCKS * 2**i)
                for i, t in enumerate(template.tiers)
            ]
            mix = OmegaConf.to_container(cfg.codec, resolve=True)
            assert isinstance(mix, dict)
            mix["per_tier"] = {str(t.name): names[(r * n + i) % len(names)] for i, t in enumerate(template.tiers)}
            total = sum(CALIBRATION_TOP_BLOCKS * 2**i for i in range(n))
            run_cfg = OmegaConf.structured(ExoConfig(
                hardware=HardwareConfig(name=f"{template.name}-in-run", tiers=tiers),
                payload=PayloadConfig(**OmegaConf.to_container(cfg.payload, resolve=True)),  # type: ignore[arg-type]
                codec=CodecMixConfig(**mix),  # type: ignore[arg-type]
                policy=PolicyMixConfig(name="lru", default="lru"),
                hierarchy=HierarchyConfig(mode="exclusive"),
                workload=ZipfWorkloadConfig(objects=4 * total, alpha=0.6, accesses=accesses,
                                                    blocks_per_request=4),
                block_tokens=int(cfg.block_tokens),
            ))
            run_cfg.seed = int(cfg.seed)
            run_cfg.output.progress = False
            for key in ("integrity", "codec_threads", "file_io_threads", "file_spare_fraction", "manifest_interval_s"):
                run_cfg.runtime[key] = cfg.runtime[key]
            run_cfg.runtime.data_dir = str(folder / f"data-{r}")
            run_cfg.runtime.compute = "seeded"  # codecs and drives as the executor meets them: no model runs
            summary = run_runtime(run_cfg, folder / f"run-{r}").summary
            shutil.rmtree(folder / f"data-{r}", ignore_errors=True)
            measured = summary["measured"]
            for c in measured["codecs"]:
                enc, dec = c["encode_gbps"], c["decode_gbps"]
                old = codecs.get(c["codec"])
                if enc and dec and old is None:
                    codecs[c["codec"]] = (float(enc), float(dec))
            births_s += float(measured["births"]["generate_s"])
            births += int(measured["births"]["blocks"])
            block_bytes = {t["name"]: int(t["block_bytes"]) for t in summary["tiers"]}
            for lk in measured["links"]:
                for side, rates in ((lk["src"], reads), (lk["dst"], writes)):
                    medium = lk["src_medium"] if side == lk["src"] else lk["dst_medium"]
                    if medium != "file":
                        continue
                    rate = rates.setdefault(side, DriveRate())
                    rate.blocks += int(lk["blocks"])
                    rate.nbytes += int(lk["blocks"]) * block_bytes[side]
                    rate.seconds += float(lk["seconds"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return InRunRates(codecs, births_s / max(1, births), runs, reads, writes)


# ---------------------------------------------------------------------------- all of it
@dataclass
class HostFigures:
    """The serial executor's costs on this host (see the module docstring)."""

    checksums: list[ChecksumMeasurement]
    checksum_gbps: float
    checksum_latency_us: float
    checksum_cold_gbps: float
    birth_s: float
    prefill_tokens_per_s: float
    commit_us: float
    commit_entry_us: float
    bookkeeping: Bookkeeping

    def host_config(self, integrity: str, spare_fraction: float, interval_s: float) -> HostCostConfig:
        """These figures as ``sim.host``."""
        b = self.bookkeeping
        return HostCostConfig(
            checksum_gbps=self.checksum_gbps, checksum_cold_gbps=self.checksum_cold_gbps,
            verify_reads=integrity != "off", request_us=b.request_us, reference_us=b.reference_us,
            batch_us=b.batch_us, move_us=b.move_us, file_spare_fraction=spare_fraction,
            commit_interval_s=interval_s, commit_us=self.commit_us, commit_entry_us=self.commit_entry_us,
        )


def measure_host(
    cfg: Any,
    links: list[dict[str, Any]],
    codecs: dict[str, tuple[float, float]],
    data_dir: Path,
    progress: Any = None,
) -> HostFigures:
    """Measure checksums, births of ``cfg.payload``, commits, then fit the bookkeeping (in that order)."""
    cal = cfg.runtime.calibrate
    sizes = [int(s) for s in cal.block_sizes_bytes]
    repeats = int(cal.repeats)
    rc = cfg.runtime
    if progress:
        progress("checksums")
    checksums = measure_checksum(sizes, int(cal.bytes_per_size), repeats)
    fits = {
        hot: fit_rate([c.block_bytes for c in checksums if c.hot == hot],
                      [c.seconds / c.blocks for c in checksums if c.hot == hot])
        for hot in (True, False)
    }
    if progress:
        progress("births")
    birth_s = measure_births(cfg.payload, int(cfg.block_tokens), int(cfg.seed), repeats)
    needs_file = any(str(t.medium) == "file" for t in cfg.hardware.tiers)
    if progress and needs_file:
        progress("manifest commits")
    commit_s, entry_s = measure_commit(data_dir) if needs_file else (0.0, 0.0)
    figures = HostFigures(
        checksums=checksums,
        checksum_gbps=fits[True][0] / 1e9,
        checksum_latency_us=fits[True][1] * 1e6,
        checksum_cold_gbps=fits[False][0] / 1e9,
        birth_s=birth_s,
        prefill_tokens_per_s=int(cfg.block_tokens) / birth_s,
        commit_us=commit_s * 1e6,
        commit_entry_us=entry_s * 1e6,
        bookkeeping=Bookkeeping(),
    )
    if progress:
        progress("bookkeeping (the runtime and the model on fixed calibration workloads)")
    integrity = str(rc.integrity)
    host = figures.host_config(integrity, float(rc.file_spare_fraction), float(rc.manifest_interval_s))
    figures.bookkeeping = measure_bookkeeping(cfg.hardware, links, codecs, host, integrity, int(cfg.seed), data_dir)
    return figures


def sim_yaml(name: str, figures: HostFigures, cfg: Any) -> str:
    """The timed model as ``exo-run``'s executor on this host: a ``conf/sim/`` option (YAML)."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    payload = cfg.payload
    integrity = str(cfg.runtime.integrity)
    b = figures.bookkeeping
    lines = [
        f"# Calibrated by exo-calibrate on {platform.node()} at {when} ({name}): the timed model set up as",
        "# exo-run's executor on this host. One thread does each request's work step after step (executor:",
        "# serial), demotions inside the request (sync), a multi-hop copy as one direct copy (pipeline), one",
        "# request at a time (closed loop, one agent, no think time: exo-run without runtime.pace_arrivals;",
        "# with it, add sim.arrival=trace). Batches follow the runtime's staging pool only with",
        "# sim.host.batch_moves set for the config's blocks (exo_runtime.run.batch_move_limit).",
        f"# prefill_tokens_per_s: birth of one {payload.name} block of {int(cfg.block_tokens)} tokens, "
        f"{figures.birth_s * 1e6:.1f} us: seeded",
        "# data generation, the runtime's stand-in for recomputing a block (not a model's prefill); another",
        "# payload or block size needs its own rate (exo_runtime.hostcosts.measure_births).",
        "# CRC-32 (integrity.row_crcs) per block size (GB/s), of a block just copied into a buffer (hot)",
        "# and of a slab's row in place (cold):",
    ]
    for c in figures.checksums:
        lines.append(f"#   {c.block_bytes:>10} B {'hot ' if c.hot else 'cold'}: {c.gbps:8.3f} GB/s ({c.blocks} blocks)")
    lines.append(
        f"# fit (hot): {figures.checksum_gbps:.3f} GB/s, {figures.checksum_latency_us:.2f} us per call; "
        f"cold: {figures.checksum_cold_gbps:.3f} GB/s"
    )
    lines.append(f"# manifest commit: {figures.commit_us:.1f} us + {figures.commit_entry_us:.3f} us per block held")
    lines.append("# bookkeeping fitted on fixed calibration workloads (runtime s, model without bookkeeping s,")
    lines.append("# requests, references, batches, moves):")
    for r in b.runs:
        lines.append(f"#   {r.name:<24} {r.runtime_s:8.3f} {r.model_s:8.3f} {r.requests:6} {r.references:6} "
                     f"{r.batches:6} {r.moves:6}")
    lines += [
        "defaults:",
        "  - /sim/default@_here_",
        "  - _self_",
        "executor: serial",
        "demotion: sync",
        "multi_hop: pipeline",
        "arrival: closed_loop",
        "agents: 1",
        "think_time_s: 0.0",
        f"prefill_tokens_per_s: {figures.prefill_tokens_per_s:.1f}",
        "host:",
        f"  checksum_gbps: {figures.checksum_gbps:.4f}",
        f"  checksum_cold_gbps: {figures.checksum_cold_gbps:.4f}",
        f"  verify_reads: {str(integrity != 'off').lower()}   # runtime.integrity={integrity}",
        f"  request_us: {b.request_us:.3f}",
        f"  reference_us: {b.reference_us:.3f}",
        f"  batch_us: {b.batch_us:.3f}",
        f"  move_us: {b.move_us:.3f}",
        "  file_spare_fraction: ${runtime.file_spare_fraction}",
        "  commit_interval_s: ${runtime.manifest_interval_s}",
        f"  commit_us: {figures.commit_us:.1f}",
        f"  commit_entry_us: {figures.commit_entry_us:.4f}",
    ]
    return "\n".join(lines) + "\n"
