"""The serving loop: each request decided by the core, its moves applied, its prompt really prefilled.

Per request (``runtime.compute=model``)::

    decide    Driver.request(...)  -> what is cached (hit_blocks), the moves (promotions of the cached
              prefix to the top tier, admissions, demotions); before each block the ``between`` hook
              applies the moves so far if the next access could overflow the staging pool
    apply     executor.apply(moves): moves whose source is a tier carry real bytes; an admitted
              (computed) block gets its slot now and its data below (prefix reuse), or is computed
              as the batch runs (block reuse: its data depends on the block alone)
    load      prefix reuse: the cached prefix's blocks read from the top tier, verified (CRC-32 set
              when stored, CRC-32C) and decoded; the first stale or corrupted block ends the usable prefix
              (reported; it and the rest are recomputed, never used)
    compute   the model prefills the rest of the prompt with attention over the loaded KV (a fully
              cached prompt recomputes its last block, as the core decided)
    -- first token: its wall-clock time; TTFT = it - arrival (queue + decide/apply + load + compute,
       and whatever the engine does between them)
    after     output blocks (writes) prefilled after the prompt; the new blocks' KV (and a recomputed
              corrupted block's) written into their slots in the tier's codec, CRC-32C taken as
              stored. The engine is busy until then: the next request waits

Under block reuse (``BlockPrefill`` / ``ChunkEmbedding``) the compute happens inside ``apply``; the
loop reads the hits the top tier holds (verified and decoded) as the load. With
``runtime.compute=seeded`` there is no model: blocks are born from seeded data inside ``apply``.

Each request's row in ``requests.parquet`` carries ``ttft_s`` (from the wall clock at its first
token) and its ``queue_s``, ``compute_s`` (the model's time, synchronised on a GPU) and ``load_s``
(the rest before the first token: deciding, applying the batch, reading and decoding the prefix, the
engine's other work for the request) parts, measured with ``perf_counter``: they add up to the TTFT.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from exo_runtime.buffers import StagingPool
from exo_runtime.engine.content import ComputeClock
from exo_runtime.engine.loader import layer_loader
from exo_runtime.engine.model import DecoderModel, PastKV, RequestKV, kv_to_blocks
from exo_runtime.engine.tierio import BlockData, TierIO
from exo_runtime.engine.tokens import request_token_ids
from exo_runtime.errors import DiskFullError, RunFault
from exo_runtime.executor import Executor
from exo_runtime.settings import RuntimeSettings
from exo_sim.collector import fewer_collections
from exo_sim.driver import Driver, Served, Totals
from exo_sim.hierarchy import Hierarchy
from exo_sim.replay import ProgressFn, sample_every, workload_chunks
from exo_sim.results import REQUEST_COLUMNS, OccupancySeries, requests_frame
from exo_sim.spec import Spec


@dataclass
class ServeResult:
    """What the serving loop produced."""

    series: OccupancySeries
    requests: pd.DataFrame
    ttft_s: np.ndarray
    """Time to first token of each request served (refused requests left out)."""
    elapsed_s: float
    totals: Totals
    fault: RunFault | None
    stopped_at_request: int | None
    staging_grown: int
    served_requests: int


@dataclass
class Parts:
    """One request's measured parts, seconds (its load is the rest of its time to the first token)."""

    compute_s: float = 0.0
    store_s: float = 0.0
    bytes_loaded: int = 0
    first_token_at: float | None = None
    """``perf_counter()`` when the prompt's prefill ended (the first token); ``None``: when serving ended."""


def prefill_request(
    model: DecoderModel,
    ids: torch.Tensor,
    past_blocks: torch.Tensor | None,
    cached: int,
    chunk_tokens: int,
    extra_tokens: int = 0,
) -> RequestKV:
    """One request's prefill as the engine runs it: ``ids`` after ``cached`` tokens of loaded KV.

    The request's KV is one :class:`RequestKV` of ``cached + len(ids) + extra_tokens`` tokens
    (``extra_tokens``: output blocks prefilled later). The first chunk writes the loaded prefix
    (``past_blocks``, decoded blocks) into it through the layer loader (layer-wise on a GPU); a prompt
    longer than ``chunk_tokens`` continues in chunks, each writing its KV after the last and attending
    over the rows so far. ``exo-calibrate`` times this very function.
    """
    kv = RequestKV.for_model(model, cached + ids.numel() + extra_tokens)
    loader = layer_loader(past_blocks, model.device, model.dtype, into=kv) if past_blocks is not None else None
    done = 0
    while done < ids.numel():
        part = ids[done : done + chunk_tokens]
        model.prefill(part, position=cached + done, past_loader=loader if done == 0 else None, cache=kv)
        done += part.numel()
    return kv


class PrefixEngine:
    """Prefills a request over its cached prefix (prefix reuse, ``compute=model``): load, compute, store.

    Args:
        model: the engine's model.
        spec: the run's spec (block size, top tier).
        h: the decision core.
        io: reads and writes block data in the tiers.
        clock: where compute time is summed.
        chunk_tokens: the longest prefill in one forward pass.
        token_seed: mixed into every block's token ids.

    Each request gets one :class:`~exo_runtime.engine.model.RequestKV` sized for all its tokens
    (cached prefix, new tokens, output blocks): the loaded prefix is written into it once, each
    chunk's new KV in place, and the output blocks' after the prompt's, so no KV is concatenated.
    """

    def __init__(
        self,
        model: DecoderModel,
        spec: Spec,
        h: Hierarchy,
        io: TierIO,
        clock: ComputeClock,
        chunk_tokens: int,
        token_seed: int = 0,
    ) -> None:
        self.model = model
        self.block_tokens = spec.block_tokens
        self.h = h
        self.io = io
        self.clock = clock
        self.chunk_tokens = chunk_tokens
        self.token_seed = token_seed
        self.shape = model.block_shape(spec.block_tokens)
        self.recomputed_corrupt = 0
        """Prefix blocks found stale or corrupted at load, recomputed instead of used."""

    def serve(
        self, blocks: Sequence[int], tokens: Sequence[int], writes: Sequence[bool] | None, served: Served
    ) -> Parts:
        """Load the cached prefix, prefill the rest, store the new KV; the request's measured parts."""
        parts = Parts()
        h, io, T = self.h, self.io, self.block_tokens
        reads = [i for i in range(len(blocks)) if writes is None or not writes[i]]
        hit = served.hit_blocks
        keys = []
        for i in reads[:hit]:
            found = h.find(blocks[i])
            assert found is not None and found[1] == h.top, "a cached prefix block is not in the top tier"
            keys.append(found[0])
        xs, usable = io.load(h.top, keys)
        parts.bytes_loaded = usable * io.ex.stores[h.top].slot_bytes  # type: ignore[union-attr]
        self.recomputed_corrupt += hit - usable

        vocab = self.model.arch.vocab_size
        ids = request_token_ids([blocks[i] for i in reads], [tokens[i] for i in reads], T, vocab, self.token_seed)
        cached = usable * T
        past_blocks = xs[:usable].view(usable, *self.shape) if usable else None
        out_tokens = T * sum(1 for w in writes if w) if writes is not None else 0
        kv, compute_s = self._prefill(ids[cached:], past_blocks, cached, out_tokens)
        new_kv = kv.kv(cached, len(ids))
        parts.compute_s = compute_s
        parts.first_token_at = time.perf_counter()  # the rest (output blocks, the store) comes after it

        t1 = time.perf_counter()
        data: dict[int, BlockData] = {}
        for j, blk in enumerate(kv_to_blocks(new_kv, T)):
            b = blocks[reads[usable + j]]
            data.setdefault(b, (blk.float().cpu(), None))
        repair = keys[usable:]  # corrupted or stale prefix blocks: their top-tier copy gets the new KV
        rest = (len(ids) - cached) % T
        ex = io.ex
        partial = [k for k in ex.pending if k in ex.transient]
        if rest and partial:
            tail = self._partial(new_kv, len(ids) - cached - rest, rest)
            for k in partial:
                data[k] = (tail, None)
        if writes is not None and any(writes):
            data.update(self._outputs(blocks, writes, kv))
        io.store(data, sorted(ex.pending) + repair)
        parts.store_s = time.perf_counter() - t1
        return parts

    def _prefill(
        self, ids: torch.Tensor, past_blocks: torch.Tensor | None, cached: int, extra_tokens: int = 0
    ) -> tuple[RequestKV, float]:
        """Prefill ``ids`` after ``cached`` tokens of loaded context; the request's KV and the seconds.

        The request's KV is one :class:`RequestKV` of ``cached + len(ids) + extra_tokens`` tokens
        (``extra_tokens``: the output blocks prefilled later). The first chunk writes the loaded
        prefix into it through the layer loader (layer-wise on a GPU); a prompt longer than
        ``chunk_tokens`` continues in chunks, each writing its KV after the last and attending over
        the rows so far.
        """
        self.clock.start()
        kv = prefill_request(self.model, ids, past_blocks, cached, self.chunk_tokens, extra_tokens)
        return kv, self.clock.stop(ids.numel())

    def _partial(self, kv: PastKV, start: int, n: int) -> torch.Tensor:
        """The prompt's partial last block (``n`` tokens from ``start``), zero-padded to a block, float32."""
        T = self.block_tokens
        padded = [
            (torch.nn.functional.pad(k[:, start : start + n], (0, 0, 0, T - n)),
             torch.nn.functional.pad(v[:, start : start + n], (0, 0, 0, T - n)))
            for k, v in kv
        ]
        return kv_to_blocks(padded, T)[0].float().cpu()

    def _outputs(self, blocks: Sequence[int], writes: Sequence[bool], kv: RequestKV) -> dict[int, BlockData]:
        """The output blocks' KV: their tokens prefilled after the whole prompt (after the first token).

        Their KV is written into the request's ``kv`` after the prompt's.
        """
        m, T = self.model, self.block_tokens
        outs = [i for i in range(len(blocks)) if writes[i]]
        ids = request_token_ids([blocks[i] for i in outs], [T] * len(outs), T, m.arch.vocab_size, self.token_seed)
        self.clock.start()
        out_kv = m.prefill(ids, cache=kv).kv
        self.clock.stop(ids.numel())
        return {blocks[i]: (blk.float().cpu(), None) for i, blk in zip(outs, kv_to_blocks(out_kv, T), strict=True)}


class HitReader:
    """Reads a request's cached blocks that the top tier holds, verified and decoded (the load).

    Used where the engine's model does not read the blocks itself: block reuse (a RAG chunk's text
    and embedding, a KV block reused on its own) and ``compute=seeded``. A corrupted block is reported
    and never used; where the block's data can be computed again (``executor.factory``), it is, and
    its copy rewritten.
    """

    def __init__(self, h: Hierarchy, io: TierIO) -> None:
        self.h = h
        self.io = io

    def serve(self, keys: Sequence[int]) -> Parts:
        """Load ``keys`` (copies the top tier holds) in one pass, handling each corrupted one."""
        parts = Parts()
        io, ex = self.io, self.io.ex
        top = self.h.top
        store = ex.stores[top]
        assert store is not None
        left = list(keys)
        while left:
            _, ok = io.load(top, left)
            parts.bytes_loaded += ok * store.slot_bytes
            if ok == len(left):
                break
            self._recompute(left[ok])
            left = left[ok + 1 :]
        return parts

    def _recompute(self, key: int) -> None:
        ex = self.io.ex
        if ex.factory is None:
            return  # stale until its next admission recomputes it
        block = ex.data_of.get(key, key)
        x = torch.empty((1, ex.elements), dtype=torch.float32)
        raw = torch.zeros((1, max(1, ex.raw_bytes)), dtype=torch.uint8) if ex.raw_bytes else None
        ex.factory.birth([block], x, raw)
        self.io.store({block: (x[0], raw[0] if raw is not None else None)}, [key])


def cached_keys(h: Hierarchy, blocks: Sequence[int], writes: Sequence[bool] | None, served: Served) -> list[int]:
    """Prefix reuse: the keys of the request's cached prefix (each in the top tier, pinned there)."""
    reads = [b for i, b in enumerate(blocks) if writes is None or not writes[i]]
    keys = []
    for b in reads[: served.hit_blocks]:
        found = h.find(b)
        if found is not None and found[1] == h.top:
            keys.append(found[0])
    return keys


def resident_keys(h: Hierarchy, blocks: Sequence[int]) -> list[int]:
    """Block reuse, before a request is decided: the keys of its blocks resident somewhere (its hits)."""
    keys = []
    seen: set[int] = set()
    for b in blocks:
        found = h.find(b)
        if found is not None and found[0] not in seen:
            seen.add(found[0])
            keys.append(found[0])
    return keys


def serve_workload(
    spec: Spec,
    workload: Any,
    h: Hierarchy,
    executor: Executor,
    settings: RuntimeSettings,
    timeseries_points: int,
    staging_bytes: int,
    reserve: int,
    worst_moves: int,
    clock: ComputeClock | None,
    prefix: PrefixEngine | None,
    hits: HitReader | None,
    progress: ProgressFn | None,
    on_request: Callable[[int], None] | None = None,
) -> ServeResult:
    """Hand the workload to the :class:`~exo_sim.driver.Driver` request by request and serve each one.

    See the module docstring for one request's steps. ``on_request(n)`` is called before request
    ``n`` (the caller tracks where an interruption lands).
    """
    series = OccupancySeries()
    every = sample_every(workload, timeseries_points)
    pace = settings.pace_arrivals
    top = h.top
    n_tiers = len(spec.tiers)
    per_move = executor.staging_bytes_per_move()
    max_moves = max(1, (staging_bytes - reserve) // per_move)
    moves = h.moves
    driver = Driver(h, spec.reuse, spec.block_tokens, series, every)
    cols: dict[str, list[Any]] = {name: [] for name in REQUEST_COLUMNS}
    hits_rows: list[list[int]] = []
    loaded = [0]
    grown = 0
    n_requests = 0
    fault: RunFault | None = None
    stopped: int | None = None

    def flush() -> None:
        nonlocal grown
        if not moves and not executor.transient:
            return
        for m in moves:
            if m.dst == top and m.src is not None:
                loaded[0] += m.bytes_src
        if len(moves) > max_moves:  # one access needed more than the pool: grow it, and say so
            need = len(moves) * per_move + reserve
            if need > executor.staging.nbytes:
                executor.staging = StagingPool(need, executor.staging.pinned)
                grown = need
        executor.apply(moves)
        moves.clear()

    def between() -> None:
        if moves and len(moves) + worst_moves > max_moves:
            flush()

    t0 = time.perf_counter()
    series.sample(0, h.used, 0.0)
    first_arrival: float | None = None
    try:
        with fewer_collections():  # no collector pauses inside timed prefills
            for chunk in workload_chunks(workload, h):
                blocks = chunk.blocks.tolist()
                tokens = chunk.tokens.tolist()
                writes = chunk.writes.tolist() if chunk.writes.any() else None
                nxt = chunk.next_access.tolist() if (h.needs_future and chunk.next_access is not None) else None
                offsets = chunk.offsets.tolist()
                arrivals = chunk.arrival_s.tolist()
                for r in range(chunk.n_requests):
                    a, z = offsets[r], offsets[r + 1]
                    if on_request is not None:
                        on_request(n_requests)
                    if pace:
                        if first_arrival is None:
                            first_arrival = arrivals[r]
                        due = arrivals[r] - first_arrival
                        wait = due - (time.perf_counter() - t0)
                        if wait > 0:
                            time.sleep(wait)
                        arrival = due
                        start = time.perf_counter() - t0
                    else:
                        arrival = start = time.perf_counter() - t0
                    loaded[0] = 0
                    stopped = n_requests
                    compute0 = clock.s if clock is not None else 0.0
                    req_blocks = blocks[a:z]
                    req_writes = writes[a:z] if writes is not None else None
                    before = resident_keys(h, req_blocks) if hits is not None and not driver.prefix else None
                    served = driver.request(
                        req_blocks,
                        tokens[a:z],
                        req_writes,
                        nxt[a:z] if nxt is not None else None,
                        start,
                        between,
                    )
                    flush()
                    in_apply = clock.s - compute0 if clock is not None else 0.0  # block reuse: compute inside apply
                    parts = Parts()
                    if not served.refused:
                        if prefix is not None:
                            parts = prefix.serve(req_blocks, tokens[a:z], req_writes, served)
                        elif hits is not None:
                            if before is None:
                                keys = cached_keys(h, req_blocks, req_writes, served)
                            else:  # the hits still in the top tier (a request larger than it streamed through)
                                keys = [k for k in before if h.where.get(k) == top]
                            parts = hits.serve(keys)
                    compute_s = in_apply + parts.compute_s
                    # the first token's time as the wall clock saw it (everything before it counts);
                    # load_s is all of it that is not compute: deciding, the moves, reading and
                    # decoding the prefix, and the engine's other work for the request
                    first = parts.first_token_at if parts.first_token_at is not None else time.perf_counter()
                    done = first - t0 if not served.refused else start
                    load_s = max(0.0, done - start - compute_s)
                    stopped = None
                    n_requests += 1
                    cols["request"].append(n_requests - 1)
                    cols["agent"].append(-1)
                    cols["arrival_s"].append(arrival)
                    cols["served_s"].append(done)
                    cols["ttft_s"].append(done - arrival)
                    cols["queue_s"].append(max(0.0, start - arrival))
                    cols["load_s"].append(load_s if not served.refused else 0.0)
                    cols["compute_s"].append(compute_s if not served.refused else 0.0)
                    cols["prompt_tokens"].append(served.prompt_tokens)
                    cols["cached_tokens"].append(served.hit_tokens)
                    cols["prefill_tokens"].append(served.prefill_tokens)
                    cols["recomputed_tokens"].append(served.recomputed_tokens)
                    cols["blocks_read"].append(served.reads)
                    cols["blocks_written"].append(served.writes)
                    cols["recomputed_blocks"].append(0 if served.refused else served.reads - served.hit_blocks)
                    cols["stranded_blocks"].append(served.stranded)
                    cols["bytes_loaded"].append(loaded[0] + parts.bytes_loaded)
                    cols["refused"].append(served.refused)
                    hits_rows.append(served.found)
                if progress is not None:
                    progress(chunk.n_refs)
    except DiskFullError as err:
        fault = err
    elapsed = time.perf_counter() - t0
    driver.finish(elapsed)
    arrival_arr = np.asarray(cols["arrival_s"], dtype=np.float64)
    served_arr = np.asarray(cols["served_s"], dtype=np.float64)
    idx = np.arange(arrival_arr.shape[0])
    in_system = idx - np.searchsorted(np.sort(served_arr), arrival_arr, side="right")
    cols["in_system_at_arrival"] = list(np.maximum(in_system, 0))
    floats = ("arrival_s", "served_s", "ttft_s", "queue_s", "load_s", "compute_s")
    columns = {
        name: np.asarray(
            cols[name], dtype=np.float64 if name in floats else bool if name == "refused" else np.int64
        )
        for name in REQUEST_COLUMNS
    }
    hits_arr = np.asarray(hits_rows, dtype=np.int64).reshape(len(hits_rows), n_tiers)
    frame = requests_frame(spec, columns, hits_arr)
    ttft = columns["ttft_s"][~columns["refused"]]
    return ServeResult(series, frame, ttft, elapsed, driver.totals, fault, stopped, grown, n_requests)


__all__ = [
    "HitReader", "Parts", "PrefixEngine", "ServeResult", "cached_keys", "prefill_request", "resident_keys",
    "serve_workload",
]
