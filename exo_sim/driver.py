"""The one walk of a request's blocks through the decision core; every clock calls it.

The replay, the SimPy model and the runtime hand each request to :class:`Driver`, which applies the
reuse rule and asks the core (:class:`~exo_sim.hierarchy.Hierarchy`) for each decision::

    prefix reuse (a serving engine's KV cache, as vLLM's block manager counts it):
        refuse the request if its blocks exceed the top tier's room (a server could not hold them)
        cap = floor((prompt tokens - 1) / block_tokens)      # a fully cached prompt recomputes its last token
        for each read block, in order, while fewer than cap are served:
            full and resident somewhere -> use it (a hit there; promoted to the top tier)
            otherwise                   -> the cached prefix ends here
        every later read block: computed and admitted (stranded where it was still resident; the
                                 prompt's partial last block takes a slot but is never cached)
        written blocks (output): admitted
        end of request: its blocks are released tail-first
    block reuse (RAG chunks): each resident block is a hit on its own, wherever it lies; the rest
        are computed and admitted.

Which reuse a config gets is :func:`resolve_reuse`'s answer (``hierarchy.reuse``). The driver
also keeps what every clock reports per request (:class:`Served`) and over the run
(:class:`Totals`): prompt, cached and prefilled tokens, and of the prefilled ones those whose block
had been computed before in the run (``recomputed``: evicted, stranded or never cacheable) as
against those seen for the first time (``new``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from exo_sim._core import KeySet
from exo_sim.errors import ConfigError
from exo_sim.hierarchy import Hierarchy
from exo_sim.policies import NEVER
from exo_sim.results import OccupancySeries
from exo_sim.spec import Locator
from exo_sim.workloads.base import RequestChunk, Workload

REUSE_MODES = ("auto", "prefix", "block")
"""``hierarchy.reuse``: ``auto`` is ``prefix`` for a KV-cache payload on a chained workload, else ``block``."""


def resolve_reuse(reuse: str, payload_kind: str, workload: Workload, locate: Locator | None = None) -> str:
    """``hierarchy.reuse`` resolved for this payload and workload: ``prefix`` or ``block``.

    Raises:
        ConfigError: an unknown mode, or ``prefix`` for a payload that is not a KV cache or a
            workload whose requests are not block chains.
    """
    where = locate("hierarchy.reuse") if locate else None
    if reuse not in REUSE_MODES:
        raise ConfigError("hierarchy.reuse", f"is {reuse!r}, not one of {', '.join(REUSE_MODES)}", where)
    if reuse == "auto":
        return "prefix" if payload_kind == "kv_cache" and workload.chained else "block"
    if reuse == "prefix" and payload_kind != "kv_cache":
        raise ConfigError(
            "hierarchy.reuse",
            f"is prefix, but a {payload_kind} payload has no prefix chain (its chunks are reused one by one: "
            "use hierarchy.reuse=block)",
            where,
        )
    if reuse == "prefix" and not workload.chained:
        raise ConfigError(
            "hierarchy.reuse",
            f"is prefix, but the {workload.kind} workload's requests are not chains of blocks (each block id "
            "must name its whole prefix, as Mooncake's hash ids do); use hierarchy.reuse=block",
            where,
        )
    return reuse


@dataclass(slots=True)
class Served:
    """What the decision core did with one request (the same record for every clock).

    Attributes:
        reads: blocks the prompt reads; ``writes``: blocks it writes (output).
        prompt_tokens: tokens of the read blocks.
        hit_blocks / hit_tokens: served from cache (prefix reuse: the cached prefix).
        found: hits per tier index.
        prefill_tokens: prompt tokens computed (``prompt_tokens - hit_tokens``).
        new_tokens / recomputed_tokens: of those, blocks never computed before in the run / blocks
            computed before (evicted, stranded, or uncacheable).
        stranded: read blocks that were resident but not served (past the first missing block, or
            the last block of a fully cached prompt).
        refused: the request's blocks exceed the top tier's room; nothing was done.
        output_tokens: tokens of the written blocks (computed after the first token).
    """

    reads: int
    writes: int
    prompt_tokens: int
    hit_blocks: int
    hit_tokens: int
    found: list[int]
    prefill_tokens: int
    new_tokens: int
    recomputed_tokens: int
    stranded: int
    refused: bool = False
    output_tokens: int = 0


@dataclass
class Totals:
    """Per-run sums of :class:`Served` (the summary's request-level figures)."""

    requests: int = 0
    refused: int = 0
    prompt_tokens: int = 0
    hit_tokens: int = 0
    prefill_new_tokens: int = 0
    prefill_recomputed_tokens: int = 0
    oversized: int = 0
    """Block reuse only: requests that read more blocks than the top tier holds (streamed through it)."""
    found_tokens: list[int] = field(default_factory=list)

    @property
    def prefill_tokens(self) -> int:
        """Prompt tokens prefilled (new + recomputed)."""
        return self.prefill_new_tokens + self.prefill_recomputed_tokens


Between = Callable[[], None]
"""Called before each block of a request is decided (the runtime applies its pending moves then)."""


class Driver:
    """Walks requests through ``h`` under one reuse rule, sampling occupancy as it goes.

    Args:
        h: the decision core.
        reuse: ``prefix`` or ``block`` (already resolved).
        block_tokens: tokens per full block.
        series: receives occupancy samples (``None``: none taken).
        every: sample every ``every`` block reads.
    """

    def __init__(
        self,
        h: Hierarchy,
        reuse: str,
        block_tokens: int,
        series: OccupancySeries | None = None,
        every: int = 1 << 62,
    ) -> None:
        if reuse not in ("prefix", "block"):
            raise ValueError(f"reuse must be prefix or block, got {reuse!r}")
        self.h = h
        self.prefix = reuse == "prefix"
        self.block_tokens = block_tokens
        self.series = series
        self.every = max(1, every)
        self.totals = Totals(found_tokens=[0] * h.n_tiers)
        self._seen = KeySet()  # every block read or written so far (a first prefill vs a recomputation)
        self._next_sample = self.every
        self.room = h.request_room

    def sample_into(self, series: OccupancySeries | None, every: int) -> None:
        """Sample occupancy into ``series`` every ``every`` block reads from now on."""
        self.series = series
        self.every = max(1, every)
        self._rearm()

    # ------------------------------------------------------------------ one request
    def request(
        self,
        blocks: Sequence[int],
        tokens: Sequence[int],
        writes: Sequence[bool] | None = None,
        nxt: Sequence[int] | None = None,
        now: float = math.nan,
        between: Between | None = None,
    ) -> Served:
        """Decide one request; ``tokens[i]`` is what block ``i`` carries, ``nxt[i]`` its next access."""
        served = (self._prefix if self.prefix else self._blocks)(blocks, tokens, writes, nxt, now, between)
        t = self.totals
        t.requests += 1
        if served.refused:
            t.refused += 1
            return served
        t.prompt_tokens += served.prompt_tokens
        t.hit_tokens += served.hit_tokens
        t.prefill_new_tokens += served.new_tokens
        t.prefill_recomputed_tokens += served.recomputed_tokens
        return served

    def _prefix(
        self,
        blocks: Sequence[int],
        tokens: Sequence[int],
        writes: Sequence[bool] | None,
        nxt: Sequence[int] | None,
        now: float,
        between: Between | None,
    ) -> Served:
        h = self.h
        n_tiers = h.n_tiers
        full = self.block_tokens
        reads = [i for i in range(len(blocks)) if writes is None or not writes[i]]
        n_reads = len(reads)
        prompt = sum(tokens[i] for i in reads)
        if len(blocks) > self.room:
            return Served(n_reads, len(blocks) - n_reads, prompt, 0, 0, [0] * n_tiers, 0, 0, 0, 0, True)
        cap = (prompt - 1) // full if prompt > 0 else 0
        last = reads[-1] if reads else -1
        found = [0] * n_tiers
        seen = self._seen
        stranded0 = sum(h.stranded)
        hit = 0
        new_tokens = recomputed_tokens = 0
        for i in reads:
            if between is not None:
                between()
            b = blocks[i]
            na = nxt[i] if nxt is not None else NEVER
            tok = tokens[i]
            if hit >= 0 and hit < cap and tok == full:
                where = h.find(b)
                if where is not None:
                    h.use(where[0], where[1], na)
                    found[where[1]] += 1
                    hit += 1
                    continue
            if hit >= 0:
                hit = -1 - hit  # the cached prefix ended: remember its length, compute the rest
            h.compute(b, na, cacheable=(tok == full or i != last))
            if b in seen:
                recomputed_tokens += tok
            else:
                seen.add(b)
                new_tokens += tok
        output = 0
        if writes is not None:
            for i in range(len(blocks)):
                if writes[i]:
                    if between is not None:
                        between()
                    h.compute(blocks[i], nxt[i] if nxt is not None else NEVER, read=False)
                    seen.add(blocks[i])
                    output += tokens[i]
        h.end_request()
        hits = hit if hit >= 0 else -1 - hit
        self._sample(now)
        for t, n in enumerate(found):
            self.totals.found_tokens[t] += n * full
        return Served(
            n_reads,
            len(blocks) - n_reads,
            prompt,
            hits,
            hits * full,
            found,
            prompt - hits * full,
            new_tokens,
            recomputed_tokens,
            sum(h.stranded) - stranded0,
            output_tokens=output,
        )

    def _blocks(
        self,
        blocks: Sequence[int],
        tokens: Sequence[int],
        writes: Sequence[bool] | None,
        nxt: Sequence[int] | None,
        now: float,
        between: Between | None,
    ) -> Served:
        h = self.h
        found = [0] * h.n_tiers
        seen = self._seen
        series, every = self.series, self.every
        prompt = hit_tokens = new_tokens = recomputed_tokens = n_written = output = 0
        if len(blocks) > h.top_room:
            self.totals.oversized += 1
        for i, b in enumerate(blocks):
            if between is not None:
                between()
            na = nxt[i] if nxt is not None else NEVER
            if writes is not None and writes[i]:
                h.write(b, na)
                seen.add(b)
                n_written += 1
                output += tokens[i]
                continue
            tok = tokens[i]
            prompt += tok
            where = h.find(b)
            if where is not None:
                found[where[1]] += 1
                hit_tokens += tok
                self.totals.found_tokens[where[1]] += tok
            elif b in seen:
                recomputed_tokens += tok
            else:
                seen.add(b)
                new_tokens += tok
            if nxt is not None:
                h.access_many((b,), (na,))
            else:
                h.access_many((b,))
            if series is not None and h.accesses % every == 0:
                series.sample(h.accesses, h.used, now)
        hits = sum(found)
        n_reads = len(blocks) - n_written
        self._rearm()
        return Served(
            n_reads, n_written, prompt, hits, hit_tokens, found, prompt - hit_tokens, new_tokens, recomputed_tokens, 0,
            output_tokens=output,
        )

    def _rearm(self) -> None:
        """The next occupancy sample falls on the next multiple of ``every`` block reads."""
        self._next_sample = (self.h.accesses // self.every + 1) * self.every

    def _sample(self, now: float) -> None:
        h = self.h
        if self.series is not None and h.accesses >= self._next_sample:
            self.series.sample(h.accesses, h.used, now)
            self._rearm()

    # ------------------------------------------------------------------ a whole chunk (the replay)
    def chunk(self, chunk: RequestChunk) -> None:
        """Decide every request of ``chunk`` with no per-request record (the replay's path).

        Block reuse over full blocks with no writes is decided a span at a time (the core's fast
        path, sampling at the same access indices as the per-request walk); the rest request by
        request.
        """
        h = self.h
        if self.prefix or chunk.writes.any() or not bool((chunk.tokens == self.block_tokens).all()):
            blocks = chunk.blocks.tolist()
            nxt = chunk.next_access.tolist() if (h.needs_future and chunk.next_access is not None) else None
            tokens = chunk.tokens.tolist()
            writes = chunk.writes.tolist() if chunk.writes.any() else None
            offsets = chunk.offsets.tolist()
            for r in range(chunk.n_requests):
                s, e = offsets[r], offsets[r + 1]
                self.request(
                    blocks[s:e],
                    tokens[s:e],
                    writes[s:e] if writes is not None else None,
                    nxt[s:e] if nxt is not None else None,
                )
            return
        # the core reads int64 arrays in place: no Python int per reference
        arr = np.ascontiguousarray(chunk.blocks, dtype=np.int64)
        nxt_arr = (
            np.ascontiguousarray(chunk.next_access, dtype=np.int64)
            if (h.needs_future and chunk.next_access is not None)
            else None
        )
        self._span(chunk, arr, nxt_arr)

    def _span(self, chunk: RequestChunk, blocks: np.ndarray, nxt: np.ndarray | None) -> None:
        h = self.h
        t = self.totals
        n_req = chunk.n_requests
        t.requests += n_req
        if n_req:
            sizes = chunk.offsets[1:] - chunk.offsets[:-1]
            t.oversized += int((sizes > h.top_room).sum())
        first = self._seen.update(blocks)
        hits0 = list(h.hits)
        full = self.block_tokens
        every, series = self.every, self.series
        start, m = 0, len(blocks)
        while start < m:
            end = min(m, start + every - h.accesses % every)
            if nxt is not None:
                h.access_many(blocks[start:end], nxt[start:end])
            else:
                h.access_many(blocks[start:end])
            if series is not None and h.accesses % every == 0:
                series.sample(h.accesses, h.used)
            start = end
        self._rearm()
        hit_blocks = 0
        for k, (a, b) in enumerate(zip(hits0, h.hits, strict=True)):
            t.found_tokens[k] += (b - a) * full
            hit_blocks += b - a
        t.prompt_tokens += m * full
        t.hit_tokens += hit_blocks * full
        t.prefill_new_tokens += first * full
        t.prefill_recomputed_tokens += (m - hit_blocks - first) * full

    def finish(self, now: float = math.nan) -> None:
        """Take the last occupancy sample if the run did not end on one."""
        if self.series is not None and self.series.access_index[-1] != self.h.accesses:
            self.series.sample(self.h.accesses, self.h.used, now)
