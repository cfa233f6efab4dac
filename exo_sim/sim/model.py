"""The timed model: the decision core driven by SimPy's clock.

Requests reach the decision core (:class:`~exo_sim.hierarchy.Hierarchy`) in
workload order, at the times the arrival process gives (see :mod:`~exo_sim.sim.arrivals`). The core
decides at once, as in the replay; the model then carries out that request's moves in simulated time::

    request r arrives at t:
        moves = the core's moves for r's references, counted by (src, dst) (Hierarchy.take_flows)
        promotions (tier s -> top): their bytes cross every link from s up to the top; per link, one
                                    transfer carries the sum of r's promotions that cross it
        demotions (tier k -> k+1) and write-through copies (top -> last): likewise, downwards
        computed blocks (read misses): recomputed on a prefill engine, block_tokens / prefill rate each
        drops and written (output) blocks: cost nothing
        a move between tiers of different codecs: decoded and re-encoded on a codec engine
        r is served when its promotions (and their codec work) and its recompute are done, and,
        with demotion=sync, its demotions too; with demotion=background they go on without it

A request whose blocks are all in the top tier is served the moment it arrives. Transfers on one
link contend for its channels (FIFO), recomputes for the prefill engines, codec work for the codec
engines. ``store_and_forward`` sends a request's promotions over one link after the other, from the
deepest; ``pipeline`` holds all the links of the chain at once for the sum of their latencies plus
the slowest link's bytes / bandwidth (links taken in a fixed order, so that no two chains deadlock).

Codec time: a block changing codec costs ``U / decode(src codec) + U / encode(dst codec)`` seconds,
``U`` being its floating-point elements at 4 bytes each (the profile's codec throughputs are GB/s of
uncompressed data); raw bytes (RAG text) are not re-encoded.

Occupancy is the decision core's: a block counts in its new tier from the moment the decision is made
(its slot is reserved), while its bytes are still on the way.

Around the prefill the serving engine also schedules the request, loads its cached prefix out of the
top tier and stores its new KV after the first token (``hardware.engine``, :mod:`exo_sim.engine_costs`);
with ``copies: host`` its own thread does the request's copies between tiers too, one step after the
other, before the prefill (a CPU server, or any engine that swaps blocks synchronously).

This module turns each request's decisions into work and gathers the results; the work itself (the
engine's side of a request, its transfers) is carried out by :mod:`exo_sim.sim.service`, by event
callbacks rather than one SimPy process per request.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Generator, Iterator
from typing import Any

import numpy as np
import simpy

from exo_sim.collector import fewer_collections
from exo_sim.driver import Driver
from exo_sim.errors import ConfigError
from exo_sim.hierarchy import Hierarchy
from exo_sim.replay import ProgressFn
from exo_sim.results import REQUEST_COLUMNS, LinkUsage, OccupancySeries, PairUsage
from exo_sim.sim.links import Fabric, Link, held_together_s
from exo_sim.sim.servers import Server
from exo_sim.sim.service import Chain, Hops, HostService, Pipeline, Service
from exo_sim.sim.settings import Locator, SimSettings
from exo_sim.spec import Spec
from exo_sim.workloads.base import RequestChunk

Request = tuple[list[int], list[int], list[bool] | None, list[int] | None]

SimEvent = Generator[simpy.Event, Any, None]


_ROW = (
    "agent", "in_system_at_arrival", "blocks_read", "blocks_written", "recomputed_blocks", "prompt_tokens",
    "cached_tokens", "prefill_tokens", "recomputed_tokens", "stranded_blocks", "refused", "bytes_loaded",
)
"""The integer per-request columns, in the order :meth:`TimedModel._issue` appends them."""


def _codec_pairs(spec: Spec) -> list[tuple[int, int, str]]:
    """Every (src, dst) the decision core can move a block between, with what the move is."""
    usable = [t.index for t in spec.tiers if t.usable]
    top, last = usable[0], usable[-1]
    pairs = [(t, top, "promotions") for t in usable[1:]]
    pairs += [(a, b, "demotions") for a, b in zip(usable, usable[1:], strict=False)]
    if spec.mode == "write_through" and last != top:
        pairs.append((top, last, "write-through copies"))
    return pairs


class TimedModel:
    """The SimPy model of one config (see the module docstring).

    Args:
        spec: the resolved hierarchy.
        settings: the timed model's settings.
        locate: names the origin of a config key in error messages.
        keep_log: keep a log of every transfer, recompute and codec step (for tests of tiny cases).

    Raises:
        ConfigError: two tiers the core moves blocks between have no route of links, or a codec the
            tiers change between has no throughput in the hardware profile.
    """

    def __init__(
        self, spec: Spec, settings: SimSettings, locate: Locator | None = None, keep_log: bool = False
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.env = simpy.Environment()
        self.fabric = Fabric(self.env, spec, locate)
        names = [t.name for t in spec.tiers]
        pairs = _codec_pairs(spec)
        self.fabric.check_routes(pairs, names, locate)
        self.h = Hierarchy(spec)
        n = len(spec.tiers)
        self._routes: list[list[tuple[Link, ...]]] = [
            [self.fabric.route(a, b) or () for b in range(n)] for a in range(n)
        ]
        self._codec_s = self._codec_table(pairs, locate)
        self._up_order, self._down_order = self._hop_orders()
        self.engine = Server(self.env, settings.compute_engines, "engine")
        self.cost = settings.prefill_cost
        self.engine_costs = settings.engine
        self._top_block_bytes = spec.tiers[self.h.top].block_bytes
        self._pairs: dict[tuple[int, int], PairUsage] = {}
        self.driver = Driver(self.h, spec.reuse, spec.block_tokens)
        self.codec = Server(self.env, settings.codec_workers, "codec")
        # what a request's service reads of the settings, at hand
        self.chain: type[Chain | Pipeline] = Pipeline if settings.pipeline else Chain
        self.layers = settings.layers if settings.layerwise else 0  # 0: the load, then the prefill
        self.demotion_sync = settings.demotion_sync
        self.last_end_s = 0.0
        self.log: list[tuple[float, float, str, str]] | None = None
        if keep_log:
            self.enable_log()
        # per-request columns (see exo_sim.results.REQUEST_COLUMNS): times, the integer row, hits per tier
        self.arrival_s = array("d")
        self.served_s = array("d")
        self.queue_s = array("d")
        self.load_s = array("d")
        self.compute_s = array("d")
        self._rows = array("q")  # _ROW's fields, one row per request
        self._hits = array("q")  # n_tiers per request
        ends: list[int | None] = [*range(n), None]
        self._flow_kinds = {(a, b): self._flow_kind(a, b) for a in ends for b in ends}
        self.in_system = 0
        self._in_system_area = 0.0
        self._in_system_since = 0.0
        # set by run()
        self._chunks: Iterator[RequestChunk] = iter(())
        self._stream: Iterator[Request] = iter(())
        self.prefix = spec.reuse == "prefix"
        self._progress: ProgressFn | None = None
        self._series: OccupancySeries | None = None
        self._every = 1 << 62

    # ------------------------------------------------------------------ set-up
    def enable_log(self) -> None:
        """Log every job: ``(start_s, end_s, server, request)``, e.g. ``(0.0, 1e-5, "t1->t0", "r2")``."""
        log: list[tuple[float, float, str, str]] = []
        self.log = log
        servers = [self.engine, self.codec] + [link.server for link in self.fabric.links]
        for server in servers:
            server.log = log  # type: ignore[assignment]

    def _codec_table(self, pairs: list[tuple[int, int, str]], locate: Locator | None) -> list[list[float]]:
        spec = self.spec
        n = len(spec.tiers)
        table = [[0.0] * n for _ in range(n)]
        work_bytes = 4 * spec.content.elements
        tp = spec.codec_throughput_bytes_per_s
        for src, dst, why in pairs:
            a, b = spec.tiers[src].codec, spec.tiers[dst].codec
            if a == b or work_bytes == 0:
                continue
            for codec, tier in ((a, spec.tiers[src].name), (b, spec.tiers[dst].name)):
                if codec not in tp:
                    key = f"hardware.codec_throughput.{codec}"
                    raise ConfigError(
                        key,
                        f"is missing; tier {tier} stores {codec} and the timed model needs its speed "
                        f"to time {why} between {a} and {b} (add encode_gbps and decode_gbps)",
                        locate("hardware.codec_throughput") if locate else None,
                    )
            table[src][dst] = work_bytes / tp[a][1] + work_bytes / tp[b][0]
        return table

    def _hop_orders(self) -> tuple[list[Link], list[Link]]:
        """Links in store-and-forward order: upwards from the deepest tier, downwards from the top.

        Links off those two chains (in unusual topologies) follow, by index.
        """
        usable = [t.index for t in self.spec.tiers if t.usable]
        top, last = usable[0], usable[-1]
        up = list(self._routes[last][top])
        down = list(self._routes[top][last])
        up += [link for link in self.fabric.links if link not in up]
        down += [link for link in self.fabric.links if link not in down]
        return up, down

    def _flow_kind(self, src: int | None, dst: int | None) -> tuple[bool, tuple[int, ...], float, int] | None:
        """What a move from ``src`` to ``dst`` costs.

        Returns ``(promotion?, positions in the up or down order of the links it crosses, codec
        seconds per block, bytes per block as it crosses)``; ``None`` for computed or written blocks
        and drops, which cross no link (and for pairs no move joins).
        """
        if src is None or dst is None or not self._routes[src][dst]:
            return None
        promotion = dst < src
        order = self._up_order if promotion else self._down_order
        hops = tuple(order.index(link) for link in self._routes[src][dst])
        return (promotion, hops, self._codec_s[src][dst], self.spec.tiers[src].block_bytes)

    # ------------------------------------------------------------------ decisions
    def _issue(
        self,
        blocks: list[int],
        tokens: list[int],
        writes: list[bool] | None,
        nxt: list[int] | None,
        agent: int,
        waiter: simpy.Event | None,
    ) -> bool:
        """A request arrives now: hand it to the driver (the decisions) and start its work.

        Returns whether it is still being served (``waiter``, if given, succeeds when it is).
        """
        now = self.env.now
        in_system = self.in_system
        self._in_system_area += in_system * (now - self._in_system_since)
        self._in_system_since = now
        self.in_system = in_system + 1
        served = self.driver.request(blocks, tokens, writes, nxt, now)

        rid = len(self.arrival_s)
        self.arrival_s.append(now)
        self.served_s.append(math.nan)
        self.queue_s.append(0.0)
        self.load_s.append(0.0)
        self._hits.extend(served.found)
        reads, writes_n, hit_blocks = served.reads, served.writes, served.hit_blocks
        if served.refused:
            self.compute_s.append(0.0)
            self._rows.extend((agent, in_system, reads, writes_n, 0, served.prompt_tokens, served.hit_tokens,
                               served.prefill_tokens, served.recomputed_tokens, served.stranded, 1, 0))
            self.depart(rid)
            return False
        kinds = self._flow_kinds
        up: dict[int, list[int]] = {}  # [bytes, blocks] per link, by position in the up / down order
        down: dict[int, list[int]] = {}
        up_codec = down_codec = 0.0
        loaded = 0
        copies: list[tuple[int, int, int]] = []  # host copies: (src, dst, blocks)
        host_copies = self.engine_costs.host_copies
        for key, count in self.h.take_flows().items():
            kind = kinds[key]
            if kind is None:  # computed / written, or dropped: no transfer
                continue
            promotion, hops, codec_s, nbytes = kind
            total = count * nbytes
            if host_copies:
                copies.append((key[0], key[1], count))  # type: ignore[arg-type]
            if promotion:
                loaded += total
                per_link = up
                up_codec += count * codec_s
            else:
                per_link = down
                down_codec += count * codec_s
            for i in hops:
                carried = per_link.get(i)
                if carried is None:
                    per_link[i] = [total, count]
                else:
                    carried[0] += total
                    carried[1] += count
        settings = self.settings
        if settings.encode is not None:  # rag_chunk: the encoder embeds the missed and the written blocks
            compute_s = settings.encode.seconds(reads - hit_blocks + writes_n)
        else:
            compute_s = self.cost.seconds(served.prefill_tokens, served.hit_tokens if self.prefix else 0)
        self.compute_s.append(compute_s)
        self._rows.extend((agent, in_system, reads, writes_n, reads - hit_blocks, served.prompt_tokens,
                           served.hit_tokens, served.prefill_tokens, served.recomputed_tokens, served.stranded, 0,
                           loaded))
        ec = self.engine_costs
        top_bytes = self._top_block_bytes
        stored = reads - hit_blocks + writes_n
        after = ec.store_s(stored, stored * top_bytes)  # after the first token: the new KV into the top tier
        if self.prefix and served.output_tokens and settings.encode is None:
            # the written (output) blocks' KV, computed once the prompt is: after the first token
            after += self.cost.seconds(served.output_tokens, served.prompt_tokens)
        around = (
            ec.schedule_s(reads + writes_n),
            ec.load_s(hit_blocks, hit_blocks * top_bytes) if self.prefix else 0.0,
            after,
        )
        label = f"r{rid}" if self.log is not None else ""
        if host_copies:
            copy_s = sum(self._host_copy_s(src, dst, n) for src, dst, n in copies) + up_codec + down_codec
            if not (copy_s or compute_s or any(around)):
                self.depart(rid)
                return False
            HostService(self, rid, copy_s, compute_s, around, label, waiter)
            return True
        order = self._up_order
        up_hops: Hops = [(order[i], up[i][0], up[i][1]) for i in sorted(up)] if up else []
        order = self._down_order
        down_hops: Hops = [(order[i], down[i][0], down[i][1]) for i in sorted(down)] if down else []
        if not (up_hops or up_codec or compute_s or down_hops or down_codec or any(around)):
            self.depart(rid)
            return False
        Service(self, rid, up_hops, up_codec, compute_s, (down_hops, down_codec), around, label, waiter)
        return True

    def _host_copy_s(self, src: int, dst: int, blocks: int) -> float:
        """Seconds the engine's thread takes to copy ``blocks`` blocks from tier ``src`` to ``dst``.

        Straight from source to destination memory: the route's latencies and per-block costs, and
        the bytes over the slowest of its links. The links' meters count the bytes and the time.
        """
        route = self._routes[src][dst]
        nbytes = blocks * self.spec.tiers[src].block_bytes
        seconds = held_together_s((link, nbytes, blocks) for link in route)
        for link in route:
            link.bytes_moved += nbytes
            link.transfers += 1
            link.host_busy_s += seconds
        usage = self._pairs.get((src, dst))
        if usage is None:
            names = [t.name for t in self.spec.tiers]
            usage = self._pairs[(src, dst)] = PairUsage(names[src], names[dst])
        usage.blocks += blocks
        usage.bytes_moved += nbytes
        usage.busy_s += seconds
        return seconds

    def depart(self, rid: int, first_token_s: float | None = None) -> None:
        """Request ``rid`` leaves the engine now; its first token came at ``first_token_s`` (default now)."""
        now = self.env.now
        self._in_system_area += self.in_system * (now - self._in_system_since)
        self._in_system_since = now
        self.in_system -= 1
        self.served_s[rid] = now if first_token_s is None else first_token_s
        self.last_end_s = max(self.last_end_s, now)

    def background_done(self) -> None:
        """A background demotion has arrived (the makespan runs to the last transfer)."""
        self.last_end_s = self.env.now

    def _requests(self, chunk: RequestChunk) -> Iterator[Request]:
        """The chunk's requests as ``(blocks, tokens, writes, next accesses)`` lists."""
        writes = chunk.writes.tolist() if chunk.writes.any() else None
        nxt = chunk.next_access.tolist() if (self.h.needs_future and chunk.next_access is not None) else None
        blocks, tokens, offsets = chunk.blocks.tolist(), chunk.tokens.tolist(), chunk.offsets.tolist()
        for i in range(chunk.n_requests):
            s, e = offsets[i], offsets[i + 1]
            yield (
                blocks[s:e],
                tokens[s:e],
                writes[s:e] if writes is not None else None,
                nxt[s:e] if nxt is not None else None,
            )

    def open_loop(self, arrival_times: Callable[[RequestChunk], np.ndarray]) -> None:
        """Start an open-loop feed: each request enters at its arrival time, in workload order."""
        _OpenLoopFeed(self, arrival_times)

    def _request_stream(self) -> Iterator[Request]:
        progress = self._progress
        for chunk in self._chunks:
            yield from self._requests(chunk)
            if progress is not None:
                progress(chunk.n_refs)

    def agent(self, agent: int, think_s: Callable[[], float]) -> SimEvent:
        """One closed-loop agent: take the next request, wait until it is served, think, repeat."""
        env = self.env
        stream = self._stream
        first = True
        while True:
            if not first:
                pause = think_s()
                if pause > 0:
                    yield env.timeout(pause)
            first = False
            req = next(stream, None)
            if req is None:
                return
            served = env.event()
            if self._issue(req[0], req[1], req[2], req[3], agent, served):
                yield served

    # ------------------------------------------------------------------ running
    def run(
        self,
        chunks: Iterator[RequestChunk],
        start: Callable[[TimedModel], None],
        series: OccupancySeries | None = None,
        every: int = 1 << 62,
        progress: ProgressFn | None = None,
    ) -> None:
        """Run the whole workload to the end of its last transfer.

        Args:
            chunks: the workload's requests (with next-access times when a policy needs them).
            start: starts the arrival process's SimPy processes (``ArrivalProcess.start``).
            series: receives occupancy samples (access index and time).
            every: sample occupancy every ``every`` reads (as the replay does).
            progress: called with the references handed to the core, a chunk at a time.
        """
        self._chunks = iter(chunks)
        self._stream = self._request_stream()
        self._series = series
        self._every = max(1, every)
        self.driver.sample_into(series, self._every)
        self._progress = progress
        with fewer_collections():
            start(self)
            self.env.run()

    # ------------------------------------------------------------------ results
    @property
    def engine_busy_s(self) -> float:
        """Compute-engine seconds held by requests (loading their prefix and prefilling)."""
        return self.engine.busy_s

    @property
    def codec_busy_s(self) -> float:
        """Engine-seconds of codec work."""
        return self.codec.busy_s

    def pair_usage(self) -> list[PairUsage]:
        """Busy time and bytes per (source, destination) tier pair of the engine's own copies.

        Empty with copy engines (``copies: dma``), whose time is counted per link.
        """
        return list(self._pairs.values())

    @property
    def makespan_s(self) -> float:
        """Time from 0 to the end of the last transfer, recompute or service."""
        return self.last_end_s

    @property
    def mean_in_system(self) -> float:
        """Time-average number of requests arrived and not yet served, over the makespan."""
        span = self.makespan_s
        area = self._in_system_area + self.in_system * (span - self._in_system_since)
        return area / span if span > 0 else 0.0

    def link_usage(self) -> list[LinkUsage]:
        """What each link resource carried."""
        names = [t.name for t in self.spec.tiers]
        return [
            LinkUsage(
                name=link.name,
                src=names[link.src],
                dst=names[link.dst],
                duplex=link.duplex,
                bandwidth_bytes_per_s=link.bandwidth_bytes_per_s,
                latency_s=link.latency_s,
                channels=link.channels,
                bytes_moved=link.bytes_moved,
                transfers=link.transfers,
                busy_s=link.busy_s,
            )
            for link in self.fabric.links
        ]

    def request_columns(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The per-request columns (:data:`~exo_sim.results.REQUEST_COLUMNS`) and hits per tier."""
        n = len(self.arrival_s)

        def floats(a: array[float]) -> np.ndarray:
            return np.frombuffer(a, dtype=np.float64).copy() if len(a) else np.zeros(0)

        arrival, served = floats(self.arrival_s), floats(self.served_s)
        rows = np.array(self._rows, dtype=np.int64).reshape(n, len(_ROW))
        hits = np.array(self._hits, dtype=np.int64).reshape(n, len(self.spec.tiers))
        columns = {
            "request": np.arange(n, dtype=np.int64),
            "arrival_s": arrival,
            "served_s": served,
            "ttft_s": served - arrival,
            "queue_s": floats(self.queue_s),
            "load_s": floats(self.load_s),
            "compute_s": floats(self.compute_s),
            **{name: rows[:, i].copy() for i, name in enumerate(_ROW)},  # each column contiguous
        }
        columns["refused"] = columns["refused"].astype(bool)
        assert set(columns) == set(REQUEST_COLUMNS)
        return columns, hits


class _OpenLoopFeed:
    """Hands each request to the model at its arrival time: a timeout's callback, no SimPy process."""

    __slots__ = ("model", "items", "pending")

    def __init__(self, model: TimedModel, arrival_times: Callable[[RequestChunk], np.ndarray]) -> None:
        self.model = model
        self.items = self._items(arrival_times)
        self.pending: Request | None = None
        self._step(None)

    def _items(self, arrival_times: Callable[[RequestChunk], np.ndarray]) -> Iterator[tuple[float, Request]]:
        model = self.model
        progress = model._progress
        for chunk in model._chunks:
            yield from zip(arrival_times(chunk).tolist(), model._requests(chunk), strict=True)
            if progress is not None:
                progress(chunk.n_refs)

    def _step(self, _event: simpy.Event | None) -> None:
        env = self.model.env
        issue = self.model._issue
        req = self.pending
        if req is not None:
            self.pending = None
            issue(req[0], req[1], req[2], req[3], -1, None)
        for t, req in self.items:
            if t > env.now:
                self.pending = req
                env.timeout(t - env.now).callbacks.append(self._step)
                return
            issue(req[0], req[1], req[2], req[3], -1, None)
