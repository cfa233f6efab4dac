"""Calibration of the serving engine's costs around the prefill (``hardware.engine``), on this host.

The timed model (:mod:`exo_sim.engine_costs`) charges a request, besides its prefill, for scheduling
its blocks, loading its cached prefix out of the top tier, and storing its new KV into it. Each is
measured here on its own, with the runtime's own parts, never from a run of the workload being
predicted and never as a residual between a model and a run:

* **scheduling**: the decision core (:class:`~exo_sim.driver.Driver` over a
  :class:`~exo_sim.hierarchy.Hierarchy` recording moves, as ``exo-run`` builds it) on the config's
  own tiers and policies, deciding a synthetic chained workload (sessions whose turns extend a shared
  prefix); seconds per block the requests name;
* **the KV load**: :meth:`~exo_runtime.engine.tierio.TierIO.load` (read, verify, decode) of ``k``
  blocks out of a store of the config's top-tier medium, codec and block size, for several ``k``;
* **the KV store**: :meth:`~exo_runtime.engine.tierio.TierIO.store` (encode, checksum, write) of
  ``k`` blocks of real-shaped float32 data into it.

* **the engine's own time per request** outside the prefill and the KV load: ``exo-run`` itself serves
  a fixed synthetic workload (agent sessions sized to the config's top tier, on the config's tiers,
  codecs, block size and payload, arrivals not paced); for each request, the wall time from its
  start to its first token less its measured compute and its KV load at the rate measured above is
  the engine's scheduling and bookkeeping for it, fitted as ``request + blocks x block`` seconds
  (``request_us``, ``schedule_us_per_block``). No run of the workload being predicted is used.

The load and store times are fitted, non-negative least squares, as ``call + k x block`` seconds; the
per-block figure is what the model charges (``kv_load_block_us``, ``kv_store_block_us``, at the
config's block size, so ``kv_*_gbps`` stay unset), and the per-call one is reported beside it: it is
not a term of the model, so it is an error the cross-check will show, not a figure hidden in another.
Each figure is the median of ``repeats`` timings after a warm-up; threads are pinned as the runtime
pins them (the caller's ``torch.set_num_threads``).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from exo_runtime.allocator import keep_freed_memory
from exo_runtime.buffers import StagingPool
from exo_runtime.codecs import make_codec
from exo_runtime.engine.tierio import TierIO
from exo_runtime.executor import Copy, Executor
from exo_runtime.stores import StoreSettings, store_class
from exo_sim.driver import Driver
from exo_sim.hierarchy import Hierarchy
from exo_sim.spec import build_spec

LOAD_COUNTS = (1, 4, 16, 64)
"""Blocks per timed load / store call."""


def fit_call_and_block(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Non-negative least-squares fit of ``seconds = call + blocks x block``; returns ``(call, block)``.

    With one point, or when the unconstrained intercept is negative, the line goes through the origin.
    """
    k = np.array([p[0] for p in points], dtype=np.float64)
    t = np.array([p[1] for p in points], dtype=np.float64)
    if len(points) >= 2 and np.ptp(k) > 0:
        slope, intercept = np.polyfit(k, t, 1)
        if intercept >= 0 and slope >= 0:
            return float(intercept), float(slope)
        if slope < 0:  # time does not grow with blocks: all of it is per call
            return float(max(0.0, t.mean())), 0.0
    return 0.0, max(0.0, float((k @ t) / (k @ k)))


@dataclass
class EngineFigures:
    """What :func:`measure_engine` measured (seconds)."""

    schedule_s_per_block: float
    load_call_s: float
    load_block_s: float
    store_call_s: float
    store_block_s: float
    top_medium: str
    top_codec: str
    block_bytes: int
    load_points: list[tuple[int, float]] = field(default_factory=list)
    store_points: list[tuple[int, float]] = field(default_factory=list)
    scheduled_blocks: int = 0
    request_s: float = 0.0
    finish_s: float = 0.0
    stored_block_s: float | None = None
    """Per stored block after the first token, as exo-run spent it (``None``: the store micro-benchmark's)."""
    requests_timed: int = 0
    """Requests of the synthetic workload the per-request time was fitted on (0: not measured)."""

    @property
    def store_s_per_block(self) -> float:
        """The per-block store time the model is given: exo-run's own when measured, else TierIO.store's."""
        return self.stored_block_s if self.stored_block_s is not None else self.store_block_s

    def values(self, copies: str = "host") -> dict[str, Any]:
        """``hardware.engine``'s keys and values.

        ``copies``: ``host`` for ``exo-run``, whose executor applies a request's moves on the engine's
        thread before its prefill.
        """
        return {
            "copies": copies,
            "request_us": float(f"{self.request_s * 1e6:.4g}"),
            "schedule_us_per_block": float(f"{self.schedule_s_per_block * 1e6:.4g}"),
            "kv_load_gbps": None,
            "kv_load_block_us": float(f"{self.load_block_s * 1e6:.4g}"),
            "kv_store_gbps": None,
            "kv_store_block_us": float(f"{self.store_s_per_block * 1e6:.4g}"),
            "finish_us": float(f"{self.finish_s * 1e6:.4g}"),
            "calibrated": True,
        }

    def overrides(self, copies: str = "host") -> list[str]:
        """The figures as Hydra overrides of ``hardware.engine``."""
        return [f"hardware.engine.{k}={'null' if v is None else str(v).lower() if isinstance(v, bool) else v}"
                for k, v in self.values(copies).items()]

    def yaml_lines(self, copies: str) -> list[str]:
        """The ``engine:`` section of a calibrated hardware profile, with what each figure rests on."""

        def pts(points: list[tuple[int, float]]) -> str:
            return ", ".join(f"{k}: {s * 1e6:.1f} us" for k, s in points)

        return [
            f"# engine: measured on this host ({self.top_medium} top tier, {self.top_codec}, "
            f"{self.block_bytes} B blocks); see exo_runtime/engine/calibrate_engine.py",
            (f"#   {self.requests_timed} requests of a synthetic workload served by exo-run: before the first "
             f"token {self.request_s * 1e6:.1f} us per request + {self.schedule_s_per_block * 1e6:.2f} us per "
             f"block; after it {self.finish_s * 1e6:.1f} us per request + {self.store_s_per_block * 1e6:.2f} us "
             "per stored block (used instead of the store fit below, which times TierIO.store alone)"
             if self.requests_timed else
             f"#   scheduling: {self.scheduled_blocks} blocks decided by the decision core"),
            f"#   KV load  (blocks: median time): {pts(self.load_points)}; fit {self.load_call_s * 1e6:.1f} us "
            f"per call (not modelled) + {self.load_block_s * 1e6:.2f} us per block",
            f"#   KV store (blocks: median time): {pts(self.store_points)}; fit {self.store_call_s * 1e6:.1f} us "
            f"per call (not modelled) + {self.store_block_s * 1e6:.2f} us per block",
            "engine:",
            *(f"  {k}: {'null' if v is None else str(v).lower() if isinstance(v, bool) else v}"
              for k, v in self.values(copies).items()),
        ]


def _chains(blocks_per_turn: int, turns: int, sessions: int, seed: int) -> list[list[int]]:
    """Synthetic chained requests: each session's turn ``t`` reads its first ``t + 1`` segments."""
    rng = np.random.default_rng(seed)
    out = []
    order = rng.permutation(np.repeat(np.arange(sessions), turns))
    seen = [0] * sessions
    for s in order.tolist():
        seen[s] += 1
        n = seen[s] * blocks_per_turn
        out.append([s * 1_000_000 + i for i in range(n)])
    return out


def measure_schedule(cfg: Any, requests: int = 240, seed: int = 0) -> tuple[float, int]:
    """Seconds per block the decision core takes to decide requests, and the blocks it decided.

    The config's own tiers, policies and block size; a synthetic chained workload over about three
    times what the tiers hold, so that it evicts, demotes and promotes as a run does.
    """
    spec = build_spec(cfg)
    h = Hierarchy(spec, record_moves=True)
    reuse = "prefix" if str(cfg.payload.kind) == "kv_cache" else "block"
    driver = Driver(h, reuse, spec.block_tokens)
    top_room = max(4, int(spec.tiers[h.top].capacity_blocks))
    per_turn = max(1, min(8, top_room // 8))
    held = sum(int(t.capacity_blocks) for t in spec.tiers if t.usable)
    sessions = max(4, min(requests, (3 * held) // (per_turn * 21)))  # 21 = 1 + 2 + ... + 6 segments a session reads
    reqs = _chains(per_turn, 6, sessions, seed)[:requests]
    T = spec.block_tokens
    elapsed = 0
    blocks = 0
    for r in reqs:
        tokens = [T] * len(r)
        t0 = time.perf_counter_ns()
        driver.request(r, tokens)
        elapsed += time.perf_counter_ns() - t0
        h.moves.clear()
        blocks += len(r)
    return elapsed / 1e9 / max(1, blocks), blocks


def measure_kv_path(cfg: Any, data_dir: Path, repeats: int = 5, seed: int = 0
                    ) -> tuple[list[tuple[int, float]], list[tuple[int, float]], str, str, int]:
    """Median seconds of TierIO.load and TierIO.store of ``k`` blocks in the config's top tier.

    Returns ``(load points, store points, top medium, top codec, block bytes)``.
    """
    c = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    most = max(LOAD_COUNTS)
    for i, tier in enumerate(c.hardware.tiers):
        tier.capacity_bytes = None
        tier.capacity_blocks = 2 * most + 8 if i == 0 else 8
    spec = build_spec(c)
    top = spec.tiers[0]
    settings = StoreSettings(data_dir=data_dir, tag="exo-calibrate-engine")
    stores = [store_class(t.medium)(t, settings) for t in spec.tiers]
    codecs = [make_codec(t.codec, spec.content.elements, c.codec) for t in spec.tiers]
    try:
        ex = Executor(Hierarchy(spec), stores, codecs, None, StagingPool(1 << 22, False),  # type: ignore[arg-type]
                      1 << 22, str(c.runtime.integrity), {}, 1.0)
        io = TierIO(ex)
        gen = torch.Generator().manual_seed(seed)
        elements = spec.content.elements
        data = {key: (torch.randn(elements, generator=gen), None) for key in range(most)}
        slots = [stores[0].allocate() for _ in range(most)]  # type: ignore[union-attr]
        for key, slot in enumerate(slots):
            ex.copies[key] = {0: Copy(slot, 0, 0.0, True, stale=True)}
        io.store(data, list(range(most)))  # the blocks' real bytes, checksums and listings

        def timed(fn: Any) -> float:
            fn()  # warm-up
            samples = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - t0)
            return statistics.median(samples)

        load_points, store_points = [], []
        for k in LOAD_COUNTS:
            keys = list(range(k))
            load_points.append((k, timed(lambda keys=keys: io.load(0, keys))))

            def store(keys: list[int] = keys) -> None:
                for key in keys:
                    ex.copies[key][0].stale = True
                io.store(data, keys)

            store_points.append((k, timed(store)))
        return load_points, store_points, top.medium, top.codec, top.block_bytes
    finally:
        for s in stores:
            if s is not None:
                s.close()


def _chained_trace(path: Path, block_tokens: int, top_blocks: int, seed: int) -> None:
    """A Mooncake-format trace of chained sessions, reads only.

    Each turn re-reads its session's context (after a shared prefix) and adds a few blocks; the last
    block is partial one time in two.
    """
    rng = np.random.default_rng(seed)
    per_turn = max(1, top_blocks // 24)
    shared = list(range(max(1, per_turn)))
    nxt = len(shared)
    sessions: list[list[int]] = []
    lines = []
    for s in rng.permutation(np.repeat(np.arange(24), 5)).tolist():
        while len(sessions) <= s:
            sessions.append([])
        add = int(rng.integers(1, per_turn + 1))
        sessions[s] += list(range(nxt, nxt + add))
        nxt += add
        ids = shared + sessions[s]
        tokens = len(ids) * block_tokens - (block_tokens // 2 if rng.integers(2) else 0)
        lines.append(json.dumps({"timestamp": 0, "input_length": tokens, "output_length": 1, "hash_ids": ids}))
    path.write_text("\n".join(lines) + "\n")


def measure_requests(cfg: Any, data_dir: Path, load_block_s: float, seed: int = 0
                     ) -> tuple[float, float, float, float, int]:
    """The engine's time per request outside its prefill, KV load and store (see the module docstring).

    ``exo-run`` serves a synthetic chained workload with arrivals not paced, so each request starts
    when the one before has finished: before its first token, the wall time less its compute and KV
    load is fitted as ``request + blocks x block``; after it, the time to the next request's start as
    ``finish + stored blocks x store``. Returns ``(request, block, finish, store, requests)`` seconds.
    """
    from exo_runtime.run import run_runtime
    from exo_sim.workloads.mooncake import MooncakeWorkloadConfig

    c = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    spec = build_spec(c)
    T = spec.block_tokens
    trace = data_dir / "chains.jsonl"
    # sized to the top tier, up to 256 blocks: prompts of a few to tens of blocks, a run of seconds
    _chained_trace(trace, T, max(8, min(256, int(spec.tiers[0].capacity_blocks))), seed)
    c.workload = OmegaConf.structured(MooncakeWorkloadConfig(path=str(trace), trace_block_tokens=T))
    c.runtime.compute = "model"
    c.runtime.pace_arrivals = False
    c.runtime.data_dir = str(data_dir / "data")
    c.runtime.resume = False
    c.output.progress = False
    req = run_runtime(c, data_dir / "run").requests
    served = ~req["refused"].to_numpy()
    hits = req["cached_tokens"].to_numpy() // T
    before = (req["ttft_s"] - req["queue_s"] - req["compute_s"]).to_numpy() - hits * load_block_s
    blocks = req["blocks_read"].to_numpy()
    call, block = fit_call_and_block([(int(b), max(0.0, float(o)))
                                      for b, o, ok in zip(blocks, before, served, strict=True) if ok])
    after = req["arrival_s"].to_numpy()[1:] - req["served_s"].to_numpy()[:-1]  # not paced: start = arrival
    stored = (blocks - hits)[:-1]
    finish, store = fit_call_and_block([(int(n), max(0.0, float(t)))
                                        for n, t, ok in zip(stored, after, served[:-1], strict=True) if ok])
    return call, block, finish, store, int(served.sum())


def measure_engine(cfg: Any, data_dir: Path | None = None, repeats: int = 5, in_engine: bool = True) -> EngineFigures:
    """Measure ``hardware.engine``'s figures for ``cfg`` on this host (see the module docstring).

    ``in_engine``: the per-request and per-block scheduling time from ``exo-run`` serving a synthetic
    workload (a KV payload with an architecture only); otherwise the decision core's time alone.
    """
    keep_freed_memory()  # as exo-run runs
    schedule_s, blocks = measure_schedule(cfg, seed=int(cfg.seed))
    with tempfile.TemporaryDirectory(prefix="exo-calibrate-engine-", dir=data_dir) as tmp:
        load, store, medium, codec, block_bytes = measure_kv_path(cfg, Path(tmp), repeats, int(cfg.seed))
    lc, lb = fit_call_and_block(load)
    sc, sb = fit_call_and_block(store)
    figures = EngineFigures(schedule_s, lc, lb, sc, sb, medium, codec, block_bytes, load, store, blocks)
    if in_engine and str(cfg.payload.kind) == "kv_cache":
        with tempfile.TemporaryDirectory(prefix="exo-calibrate-requests-", dir=data_dir) as tmp:
            request_s, block_s, finish_s, store_s, n = measure_requests(cfg, Path(tmp), lb, int(cfg.seed))
        figures.request_s, figures.schedule_s_per_block, figures.requests_timed = request_s, block_s, n
        figures.finish_s, figures.stored_block_s = finish_s, store_s
    return figures


__all__ = [
    "EngineFigures", "fit_call_and_block", "measure_engine", "measure_kv_path", "measure_requests", "measure_schedule",
]
