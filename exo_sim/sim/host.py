"""The serial executor (``sim.executor=serial``): one host thread does each request's work in turn.

``exo-run`` carries out a request in one thread: it hands the request's references to the decision
core one by one and applies the moves they cause in **batches** — a batch is applied before a
reference whenever it holds more than ``host.batch_moves`` moves (the runtime's staging pool), and at
the end of the request. A batch is **netted** as the runtime's executor nets it: each block goes from
the tiers that physically held it before the batch to the tiers that hold it after, so a block
demoted and promoted back in one batch is not copied at all, a block born and demoted is born
straight into the lower tier, a block promoted from the file tier and demoted again lands in RAM
without touching the top tier, and a write-through copy of a born block is born twice. For each
(source, destination) pair of the net copies, its blocks are read, checksummed, re-encoded when the
codec changes and written, one operation after another; born blocks are generated, checksummed,
encoded and stored. Nothing of one request overlaps anything of another, nothing within one overlaps.

So each request is **one job on a single host server** (FIFO), whose duration is the sum of its steps::

    request_us + reference_us x references + batch_us x batches + move_us x moves the core decided
    + for each net copy pair (src, dst), n blocks:
        link      n x (latency + bytes / bandwidth) over the pair's route (store_and_forward: hop
                  after hop; pipeline: the latencies summed, the slowest hop's bandwidth): a block's
                  slots are seldom next to another's, so each is its own read and write call. A
                  block that keeps its codec between host-memory tiers is one straight copy of its
                  bytes, as such a link is calibrated; any other is read in its source encoding into
                  a bounce row and written in its destination encoding. Over a link with a file on
                  one side the bytes on the file's side set the pace (the drive is far slower than the
                  copy to or from memory); over one calibrated as a straight copy it is two copies,
                  twice the latency and (source + destination bytes) / bandwidth; over another (also
                  calibrated through a bounce row) (source + destination bytes) / 2 / bandwidth
        checksum  source bytes if verify_reads (the cold rate for a block copied straight out of a
                  host-memory slab into a tier that is not a file, without re-encoding: it is checked
                  in place) + destination bytes if the codec changes
        codec     elements x 4 / decode(src codec) + elements x 4 / encode(dst codec) if it changes
    + for each tier k, n blocks born into it (read misses, blocks a request writes, write-through copies):
        generate  block_tokens / prefill_tokens_per_s       (the runtime's stand-in for a prefill)
        checksum  elements x 4 + raw bytes, + k's bytes when k's codec is lossy
        codec     elements x 4 / encode(k's codec)
        store     n x (latency + k's bytes / bandwidth) of the link into k

    + for a file tier, manifest commits as the runtime makes them: the tier has its capacity plus
      max(8, ceil(capacity x file_spare_fraction)) slots and reuses a freed slot only after a commit;
      a batch's copies into it (in the runtime's order: file tiers first) commit when they need more
      free slots than it has (and again when they must reuse slots the batch itself frees), and every
      commit_interval_s of the thread's clock; a commit costs commit_us + commit_entry_us x blocks held

With ``demotion=sync`` the request is served when its job ends. With ``demotion=background`` the net
copies downwards (and births below the top tier) are a second job right after the first: the request
is served when the first ends; the next request waits for both.

Links, codec and prefill engines are not contended resources here (the one thread is); their busy
time and bytes are still accounted, and :meth:`SerialHost.pair_usage` gives busy time and bytes per
net (source tier, destination tier) pair — what the runtime meters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from exo_sim.codecs import CODECS
from exo_sim.errors import ConfigError
from exo_sim.hierarchy import Hierarchy, Move
from exo_sim.sim.links import Fabric, Link
from exo_sim.sim.settings import SimSettings
from exo_sim.spec import Spec

Locator = Callable[[str], "str | None"]

BIRTH = -1
"""Origin of a block that is born (computed) rather than copied."""

SPARE_SLOTS_MIN = 8
"""Fewest spare slots a file tier keeps (``exo_runtime.stores.file.SPARE_SLOTS_MIN``)."""

HOST_MEDIA = ("ram", "shm", "pinned")
"""Media whose slab is addressable host memory: the runtime copies out of them straight from the slab
(``exo_runtime.stores.transfer.copy_path``), checking the source row in place."""


def _direct(src_medium: str, dst_medium: str) -> bool:
    """Whether the runtime copies a block between these media in one straight copy.

    Such a link is calibrated that way; otherwise a block is read into a bounce row and written from it.
    """
    if src_medium in HOST_MEDIA:
        return dst_medium != "file"
    return src_medium == "cuda" and dst_medium in HOST_MEDIA


@dataclass
class PairUsage:
    """What the net copies from tier ``src`` (``birth``: born) to tier ``dst`` took."""

    src: str
    dst: str
    blocks: int = 0
    bytes_moved: int = 0
    busy_s: float = 0.0


@dataclass
class _FileSlots:
    """A file tier's slots as the runtime's store has them: free now, freed but not yet reusable."""

    free: int
    pending: int = 0
    dirty: bool = False


@dataclass(frozen=True)
class _PairCost:
    """Per-block and per-operation figures of one net (origin, destination) pair."""

    hops: tuple[Link, ...]
    per_block_hop_s: tuple[float, ...]  # seconds per block on each hop (bytes / bandwidth)
    latency_hop_s: tuple[float, ...]
    extra_s: float  # per block: checksums, codec work (and, for a birth, generation)
    codec_s: float
    checksum_s: float
    prefill_s: float
    nbytes: int  # bytes counted as carried (source encoding; a birth: the destination's)
    downward: bool


class SerialHost:
    """Costs of requests under the serial executor (see the module docstring).

    Args:
        spec: the resolved hierarchy.
        settings: the timed model's settings (``serial`` on).
        fabric: the model's links and routes.
        hierarchy: the decision core (``record_moves`` on): its policies say where blocks are.
        codec_s: seconds of codec work per block moved, by ``[src][dst]`` tier index.
        locate: names the origin of a config key in error messages.

    Raises:
        ConfigError: a tier's codec has no throughput in the hardware profile (blocks are born into
            it), or a tier blocks can be born into has no link to time the store by.
    """

    def __init__(
        self,
        spec: Spec,
        settings: SimSettings,
        fabric: Fabric,
        hierarchy: Hierarchy,
        codec_s: list[list[float]],
        locate: Locator | None = None,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.fabric = fabric
        self.h = hierarchy
        self.costs = settings.host
        self._codec_s = codec_s
        self._locate = locate
        self.usable = [t.index for t in spec.tiers if t.usable]
        self._pairs: dict[tuple[int, int], _PairCost] = {}
        self.pairs: dict[tuple[int, int], PairUsage] = {}
        self.held: dict[int, int] = {}  # block -> bit mask of the tiers physically holding it
        self.batches = 0
        self.commits = 0
        self.commit_busy_s = 0.0
        self.clock = 0.0  # the thread's time: when its current request's work has got to
        self._last_commit = 0.0
        self.files = {
            t.index: _FileSlots(t.capacity_blocks + max(SPARE_SLOTS_MIN, math.ceil(
                t.capacity_blocks * self.costs.file_spare_fraction)))
            for t in spec.tiers if t.usable and t.medium == "file"
        }
        self.prefill_busy_s = 0.0
        self.codec_busy_s = 0.0
        self.checksum_busy_s = 0.0
        self.bookkeeping_s = 0.0
        self._prefill_s = spec.block_tokens / settings.prefill_tokens_per_s
        limit = self.costs.batch_moves
        self.batch_limit = math.inf if limit is None else limit
        for k in self.usable:  # refuse a profile the births cannot be timed on, before any work
            self._pair(BIRTH, k)

    # ------------------------------------------------------------------ per-block figures
    def _checksum_s(self, nbytes: int, cold: bool = False) -> float:
        rate = self.costs.checksum_bytes_per_s
        if cold and self.costs.checksum_cold_bytes_per_s:
            rate = self.costs.checksum_cold_bytes_per_s
        return nbytes / rate if rate else 0.0

    def _store_route(self, k: int) -> tuple[Link, ...]:
        """The link a block born into tier ``k`` is written over.

        The last hop into ``k`` from the nearest tier, the one above first (a host-memory copy into a
        memory tier, a write into a file).
        """
        for other in sorted(self.usable, key=lambda j: (abs(j - k), j)):
            if other != k:
                route = self.fabric.route(other, k)
                if route:
                    return (route[-1],)
        return ()

    def _pair(self, src: int, dst: int) -> _PairCost:
        cost = self._pairs.get((src, dst))
        if cost is not None:
            return cost
        spec = self.spec
        b = spec.tiers[dst]
        names = [t.name for t in spec.tiers]
        work = 4 * spec.content.elements
        if src == BIRTH:
            encode = 0.0
            if work:
                tp = spec.codec_throughput_bytes_per_s
                if b.codec not in tp:
                    raise ConfigError(
                        f"hardware.codec_throughput.{b.codec}",
                        f"is missing; tier {b.name} stores {b.codec} and sim.executor=serial needs its "
                        "encode speed to time the blocks born into it (add encode_gbps and decode_gbps)",
                        self._locate("hardware.codec_throughput") if self._locate else None,
                    )
                encode = work / tp[b.codec][0]
            checksum = self._checksum_s(work + spec.content.raw_bytes)
            if not CODECS[b.codec].lossless_from_fp32:
                checksum += self._checksum_s(b.block_bytes)
            hops = self._store_route(dst)
            moved = b.block_bytes
            cost = _PairCost(
                hops=hops,
                per_block_hop_s=tuple(moved / link.bandwidth_bytes_per_s for link in hops),
                latency_hop_s=tuple(link.latency_s for link in hops),
                extra_s=self._prefill_s + checksum + encode,
                codec_s=encode,
                checksum_s=checksum,
                prefill_s=self._prefill_s,
                nbytes=moved,
                downward=dst != self.h.top,
            )
            usage = PairUsage("birth", names[dst])
        else:
            a = spec.tiers[src]
            change = a.codec != b.codec and spec.content.elements > 0
            hops = self.fabric.route(src, dst) or ()
            read = a.block_bytes if self.costs.verify_reads else 0
            direct = not change and _direct(a.medium, b.medium)
            checksum = self._checksum_s(read, cold=direct) + self._checksum_s(b.block_bytes if change else 0)
            codec = self._codec_s[src][dst] if change else 0.0
            if change and not codec:
                codec = self._codec_pair_s(src, dst)
            per_hop, lat_hop = [], []
            for link in hops:
                ends = (spec.tiers[link.src].medium, spec.tiers[link.dst].medium)
                if "file" in ends:  # the drive's side sets the pace: the bytes read from or written to it
                    on_file = b.block_bytes if ends[1] == "file" else a.block_bytes
                    per_hop.append(on_file / link.bandwidth_bytes_per_s)
                    lat_hop.append(link.latency_s)
                elif direct or not _direct(*ends):  # as calibrated: one copy, or a read then a write
                    per_hop.append((a.block_bytes + b.block_bytes) / 2 / link.bandwidth_bytes_per_s)
                    lat_hop.append(link.latency_s)
                else:  # calibrated as one straight copy, moved through a bounce row: two copies
                    per_hop.append((a.block_bytes + b.block_bytes) / link.bandwidth_bytes_per_s)
                    lat_hop.append(2 * link.latency_s)
            cost = _PairCost(
                hops=hops,
                per_block_hop_s=tuple(per_hop),
                latency_hop_s=tuple(lat_hop),
                extra_s=checksum + codec,
                codec_s=codec,
                checksum_s=checksum,
                prefill_s=0.0,
                nbytes=a.block_bytes,
                downward=dst > src,
            )
            usage = PairUsage(names[src], names[dst])
        self._pairs[(src, dst)] = cost
        self.pairs[(src, dst)] = usage
        return cost

    def _codec_pair_s(self, src: int, dst: int) -> float:
        """Codec seconds per block between two tiers the core never moves between directly."""
        spec = self.spec
        tp = spec.codec_throughput_bytes_per_s
        a, b = spec.tiers[src], spec.tiers[dst]
        work = 4 * spec.content.elements
        for codec, tier in ((a.codec, a.name), (b.codec, b.name)):
            if codec not in tp:
                raise ConfigError(
                    f"hardware.codec_throughput.{codec}",
                    f"is missing; tier {tier} stores {codec} and sim.executor=serial needs its speed",
                    self._locate("hardware.codec_throughput") if self._locate else None,
                )
        return work / tp[a.codec][1] + work / tp[b.codec][0]

    # ------------------------------------------------------------------ requests and batches
    def request_s(self, references: int, arrival_s: float) -> float:
        """A request arriving at ``arrival_s`` starts (FIFO): its own and its references' bookkeeping."""
        s = self.costs.request_s + self.costs.reference_s * references
        self.bookkeeping_s += s
        self.clock = max(self.clock, arrival_s) + s
        return s

    def _commit(self, k: int) -> float:
        """One manifest commit of file tier ``k``: its freed slots become reusable."""
        f = self.files[k]
        cost = self.costs.commit_s + self.costs.commit_entry_s * self.h.used[k]
        f.free += f.pending
        f.pending = 0
        f.dirty = False
        self.commits += 1
        self.commit_busy_s += cost
        self._last_commit = self.clock + cost
        return cost

    def batch_s(self, moves: Sequence[Move]) -> tuple[float, float]:
        """Net ``moves`` as the runtime's executor does and time them: ``(upward work, downward work)``.

        Upward: copies into the top tier, births into it, and the batch's bookkeeping; downward: the
        rest (copies to lower tiers, births below the top).
        """
        if not moves:
            return 0.0, 0.0
        self.batches += 1
        held = self.held
        origin: dict[int, dict[int, int]] = {}
        for b, src, dst, _, _ in moves:
            o = origin.get(b)
            if o is None:
                mask = held.get(b, 0)
                o = origin[b] = {k: k for k in self.usable if mask >> k & 1}
            if dst is not None:
                o[dst] = BIRTH if src is None else o[src]
        holds = self.h.holds
        additions: dict[tuple[int, int], int] = {}
        removals: dict[int, int] = {}
        for b, o in origin.items():
            after = 0
            for k in self.usable:
                if holds(k, b):
                    after |= 1 << k
            before = held.get(b, 0)
            for k in self.usable:
                if after >> k & 1 and not before >> k & 1:
                    key = (o[k], k)
                    additions[key] = additions.get(key, 0) + 1
                elif before >> k & 1 and not after >> k & 1:
                    removals[k] = removals.get(k, 0) + 1
            if after:
                held[b] = after
            else:
                held.pop(b, None)
        book = self.costs.batch_s + self.costs.move_s * len(moves)
        self.bookkeeping_s += book
        up, down = book, 0.0
        pipeline = self.settings.pipeline
        files = self.files
        vacating = {k: n for k, n in removals.items() if k in files}
        commits = 0.0
        # the runtime's order: copies into durable tiers first, colder first
        for (src, dst), n in sorted(additions.items(), key=lambda kv: (kv[0][1] not in files, -kv[0][1])):
            f = files.get(dst)
            if f is not None:  # slots, as FileStore / Executor._allocate hand them out
                f.dirty = True
                if f.free < n:
                    commits += self._commit(dst)
                take = min(n, f.free)
                f.free -= take
                if n > take:  # the rest reuse slots this batch frees, after another commit
                    vacating[dst] = vacating.get(dst, 0) - (n - take)
                    commits += self._commit(dst)
            p = self._pair(src, dst)
            if pipeline and len(p.hops) > 1:
                link_s = n * (sum(p.latency_hop_s) + max(p.per_block_hop_s))
                busy = [link_s] * len(p.hops)
            else:
                busy = [n * (lat + per) for lat, per in zip(p.latency_hop_s, p.per_block_hop_s, strict=True)]
                link_s = sum(busy)
            for link, t in zip(p.hops, busy, strict=True):
                link.bytes_moved += n * p.nbytes
                link.transfers += n
                link.server.busy_s += t
            usage = self.pairs[(src, dst)]
            usage.blocks += n
            usage.bytes_moved += n * p.nbytes
            usage.busy_s += link_s
            self.prefill_busy_s += n * p.prefill_s
            self.codec_busy_s += n * p.codec_s
            self.checksum_busy_s += n * p.checksum_s
            work = link_s + n * p.extra_s
            if p.downward:
                down += work
            else:
                up += work
        for k, left in vacating.items():  # freed slots not reused: reusable after the next commit
            files[k].pending += max(0, left)
            files[k].dirty = True
        up += commits
        self.clock += up + down
        interval = self.costs.commit_interval_s
        if interval is not None and self.clock - self._last_commit >= interval:
            late = sum(self._commit(k) for k, f in files.items() if f.dirty)
            self._last_commit = self.clock = self.clock + late
            up += late
        return up, down

    def pair_usage(self) -> list[PairUsage]:
        """Busy time and bytes per net (source tier or ``birth``, destination tier) pair, first use first."""
        return [u for u in self.pairs.values() if u.blocks]
