"""The decision core under prefix reuse: hand-computed cases, and invariants under hypothesis.

Workloads are chains: each request reads a path from the root of one of a few random trees of block
ids (so a block id names its whole prefix, as Mooncake's hash ids do), with an optional partial last
block. The driver (:class:`exo_sim.driver.Driver`) walks each request through the core; the core's
``find`` / ``use`` / ``compute`` are wrapped on the instance to see every decision the walk makes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from exo_sim.driver import Driver, Served
from exo_sim.errors import ConfigError
from exo_sim.hierarchy import Hierarchy, Move
from tests.hierarchies import small_spec

FULL = 4
"""Tokens per full block in these tests (the driver's ``block_tokens``; the spec's bytes ignore it)."""
PARTIAL_BASE = 10_000
"""A partial last block after node ``n`` gets the id ``PARTIAL_BASE + n`` (never a full block's id)."""
POLICIES = ["lru", "fifo", "s3fifo", "arc", "sieve", "lfu"]
B16 = 2 * 4 * 2  # tiny payload, one token per block in the spec: 8 elements x 2 B (fp16)


# ---------------------------------------------------------------------------- instrumentation
@dataclass
class Trace:
    """What the walk of one request asked of the core, in order."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    depth: int = 0


def instrument(h: Hierarchy) -> Trace:
    """Wrap ``h.find`` / ``h.use`` / ``h.compute`` (on the instance) to record every call."""
    trace = Trace()
    find, use, compute = h.find, h.use, h.compute

    def find_(b: int) -> tuple[int, int] | None:
        got = find(b)
        trace.events.append(("find", b, got, trace.depth))
        return got

    def use_(key: int, tier: int, *args: Any) -> None:
        trace.events.append(("use", key, tier, owner(h, key)))
        use(key, tier, *args)

    def compute_(b: int, *args: Any, **kw: Any) -> None:
        cacheable = kw.get("cacheable", True)
        trace.events.append(("compute", b, cacheable, kw.get("read", True)))
        trace.depth += 1
        try:
            if cacheable:  # compute's own first step, inside the compiled core where no wrapper sees it
                find_(b)
            compute(b, *args, **kw)
        finally:
            trace.depth -= 1

    h.find = find_  # type: ignore[method-assign]
    h.use = use_  # type: ignore[method-assign]
    h.compute = compute_  # type: ignore[method-assign]
    return trace


def owner(h: Hierarchy, key: int) -> int:
    return h._owner.get(key, key)


def resident_blocks(h: Hierarchy) -> set[int]:
    """Blocks with a cached copy (uncacheable keys left out), by block id."""
    return {owner(h, k) for k in h.where if k not in h._transient}


# ---------------------------------------------------------------------------- workloads
@dataclass
class Workload:
    parent: list[int]  # parent[n] of node n; -1 for a root
    requests: list[tuple[list[int], list[int]]]  # (blocks, tokens)


def chain(parent: list[int], node: int) -> list[int]:
    out = []
    while node != -1:
        out.append(node)
        node = parent[node]
    return out[::-1]


@st.composite
def workloads(draw: Any, max_nodes: int = 24, max_requests: int = 30) -> Workload:
    n = draw(st.integers(min_value=1, max_value=max_nodes))
    roots = draw(st.integers(min_value=1, max_value=3))
    parent = [-1 if i < roots else draw(st.integers(min_value=0, max_value=i - 1)) for i in range(n)]
    requests = []
    for _ in range(draw(st.integers(min_value=1, max_value=max_requests))):
        node = draw(st.integers(min_value=0, max_value=n - 1))
        blocks = chain(parent, node)
        tokens = [FULL] * len(blocks)
        if draw(st.booleans()):
            blocks.append(PARTIAL_BASE + node)
            tokens.append(draw(st.integers(min_value=1, max_value=FULL - 1)))
        elif draw(st.booleans()):  # a full last block's tokens: 1 short of filling it is still partial
            tokens[-1] = draw(st.sampled_from([FULL, FULL - 1]))
        requests.append((blocks, tokens))
    return Workload(parent, requests)


def make(caps: list[int], policy: str, mode: str = "exclusive", marks: tuple[float, float] = (1.0, 1.0)) -> Hierarchy:
    try:
        spec = small_spec(caps, policy=policy, mode=mode, high=marks[0], low=marks[1])
    except ConfigError:  # every tier too small for one block under the watermark: refused
        assume(False)
        raise
    return Hierarchy(spec, record_moves=True)


# ---------------------------------------------------------------------------- one request, checked
def check_request(h: Hierarchy, d: Driver, blocks: list[int], tokens: list[int]) -> Served:
    """Decide one request and check everything the walk promises about it."""
    trace = instrument(h)
    hits0, acc0, rec0 = list(h.hits), h.accesses, h.recomputed_blocks
    stranded0 = list(h.stranded)
    moves0 = len(h.moves)
    before = (dict(h.where), list(h.used), h.counters())
    totals0 = (d.totals.requests, d.totals.refused, d.totals.prompt_tokens, d.totals.hit_tokens)
    s = d.request(blocks, tokens)
    del h.find, h.use, h.compute  # the instance wrappers: back to the class's methods
    h.verify()
    n = len(blocks)
    prompt = sum(tokens)
    assert s.reads == n and s.writes == 0 and s.prompt_tokens == prompt
    if n > h.request_room:  # refused: nothing happened
        assert s.refused and trace.events == []
        assert (dict(h.where), list(h.used), h.counters()) == before and len(h.moves) == moves0
        assert (d.totals.requests, d.totals.refused) == (totals0[0] + 1, totals0[1] + 1)
        assert (d.totals.prompt_tokens, d.totals.hit_tokens) == totals0[2:]
        return s
    assert not s.refused
    hit = s.hit_blocks
    # the served prefix is contiguous: its hits are exactly the first ``hit`` reads, each a use of a
    # copy of that very block that ``find`` had just named, and every later read is computed
    uses = [e for e in trace.events if e[0] == "use"]
    computes = [e for e in trace.events if e[0] == "compute"]
    assert sum(s.found) == hit == len(uses)
    assert [e[3] for e in uses] == blocks[:hit]
    outer_finds = [e for e in trace.events if e[0] == "find" and e[3] == 0]
    for i, e in enumerate(uses):
        assert outer_finds[i][2] == (e[1], e[2]) and outer_finds[i][1] == blocks[i]
    assert [e[1] for e in computes] == blocks[hit:]
    assert all(e[3] for e in computes)  # reads, not writes
    assert [e[2] for e in computes] == [t == FULL or i != n - 1 for i, t in enumerate(tokens)][hit:]
    # why the prefix ended where it did: the cap (a fully cached prompt recomputes its last token),
    # a partial block, or a block found nowhere
    cap = (prompt - 1) // FULL
    assert hit <= cap
    if hit < n and hit < cap and tokens[hit] == FULL:
        assert outer_finds[hit][1] == blocks[hit] and outer_finds[hit][2] is None
    assert len(outer_finds) == hit + (1 if hit < n and hit < cap and tokens[hit] == FULL else 0)
    # hits per tier, and the counts behind them
    assert [a - b for a, b in zip(h.hits, hits0, strict=True)] == s.found
    assert h.accesses - acc0 == n
    computed = h.recomputed_blocks - rec0
    assert computed == len(computes) == n - hit
    stranded = [a - b for a, b in zip(h.stranded, stranded0, strict=True)]
    inner_found = sum(1 for e in trace.events if e[0] == "find" and e[3] == 1 and e[2] is not None)
    assert s.stranded == sum(stranded) == inner_found <= computed
    # tokens
    assert s.hit_tokens == hit * FULL <= prompt - 1
    assert s.prefill_tokens == prompt - s.hit_tokens
    assert s.new_tokens + s.recomputed_tokens == s.prefill_tokens
    return s


def run_all(h: Hierarchy, d: Driver, wl: Workload) -> list[Served]:
    out = [check_request(h, d, blocks, tokens) for blocks, tokens in wl.requests]
    # over the run: every access is a hit somewhere or a computed read
    assert sum(h.hits) + h.recomputed_blocks == h.accesses
    assert sum(h.stranded) <= h.recomputed_blocks
    t = d.totals
    done = [s for s in out if not s.refused]
    assert t.requests == len(out) and t.refused == len(out) - len(done)
    assert t.prompt_tokens == sum(s.prompt_tokens for s in done)
    assert t.hit_tokens == sum(s.hit_tokens for s in done) == sum(t.found_tokens)
    assert t.prefill_tokens == t.prompt_tokens - t.hit_tokens
    assert t.prefill_new_tokens + t.prefill_recomputed_tokens == t.prefill_tokens
    assert h.accesses == sum(s.reads for s in done)
    return out


# ---------------------------------------------------------------------------- properties
caps_any = st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=3)
marks_any = st.sampled_from([(1.0, 1.0), (0.9, 0.5), (1.0, 0.3)])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wl=workloads(), caps=caps_any, policy=st.sampled_from(POLICIES), marks=marks_any)
def test_walk_accounting_and_books(wl: Workload, caps: list[int], policy: str, marks: tuple[float, float]) -> None:
    h = make(caps, policy, marks=marks)
    run_all(h, Driver(h, "prefix", FULL), wl)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wl=workloads(), caps=st.lists(st.integers(min_value=1, max_value=6), min_size=2, max_size=3),
       policy=st.sampled_from(POLICIES))
def test_write_through(wl: Workload, caps: list[int], policy: str) -> None:
    h = make(caps, policy, mode="write_through")
    run_all(h, Driver(h, "prefix", FULL), wl)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wl=workloads(), caps=caps_any, policy=st.sampled_from(POLICIES), marks=marks_any)
def test_deterministic(wl: Workload, caps: list[int], policy: str, marks: tuple[float, float]) -> None:
    runs = []
    for _ in range(2):
        h = make(caps, policy, marks=marks)
        d = Driver(h, "prefix", FULL)
        served = [d.request(b, t) for b, t in wl.requests]
        runs.append((served, h.moves, h.counters(), d.totals))
    assert runs[0] == runs[1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wl=workloads(), cap=st.integers(min_value=1, max_value=10), marks=marks_any)
def test_lru_single_tier_keeps_prefixes_closed(wl: Workload, cap: int, marks: tuple[float, float]) -> None:
    h = make([cap], "lru", marks=marks)
    d = Driver(h, "prefix", FULL)
    for blocks, tokens in wl.requests:
        check_request(h, d, blocks, tokens)
        resident = resident_blocks(h)
        for b in resident:
            assert b < PARTIAL_BASE, "a partial block was cached"
            p = wl.parent[b]
            assert p == -1 or p in resident, f"block {b} is resident without its parent {p}"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wl=workloads(), caps=caps_any, policy=st.sampled_from(POLICIES), marks=marks_any)
def test_refused_requests_change_nothing(wl: Workload, caps: list[int], policy: str, marks: tuple[float, float]) -> None:
    """A run with the over-long requests and one without them decide everything else alike."""
    h = make(caps, policy, marks=marks)
    room = h.request_room
    assume(any(len(b) > room for b, _ in wl.requests))
    d = Driver(h, "prefix", FULL)
    twin = make(caps, policy, marks=marks)
    dt = Driver(twin, "prefix", FULL)
    for blocks, tokens in wl.requests:
        s = d.request(blocks, tokens)
        assert s.refused == (len(blocks) > room)
        if not s.refused:
            assert dt.request(blocks, tokens) == s
    assert h.moves == twin.moves and h.counters() == twin.counters() and h.where == twin.where
    assert d.totals.refused == sum(len(b) > room for b, _ in wl.requests)
    assert d.totals.requests - d.totals.refused == dt.totals.requests


# ---------------------------------------------------------------------------- hand-computed cases
def full(*blocks: int) -> tuple[list[int], list[int]]:
    return list(blocks), [FULL] * len(blocks)


def test_chain_longer_than_the_tier_is_refused() -> None:
    """A 3-block chain on a 2-block LRU tier: a server could not hold it, twice over; nothing moves."""
    h = make([2], "lru")
    d = Driver(h, "prefix", FULL)
    for _ in range(2):
        s = check_request(h, d, *full(1, 2, 3))
        assert s.refused and s.hit_blocks == 0
    assert h.accesses == 0 and h.where == {} and h.moves == []
    assert (d.totals.requests, d.totals.refused, d.totals.prompt_tokens) == (2, 2, 0)


def test_chain_read_twice_on_a_tier_that_holds_it() -> None:
    """The same 3-block chain on a 3-block LRU tier: 2 hits the second time, its last block recomputed."""
    h = make([3], "lru")
    d = Driver(h, "prefix", FULL)
    first = check_request(h, d, *full(1, 2, 3))
    assert (first.hit_blocks, first.new_tokens, first.recomputed_tokens, first.stranded) == (0, 3 * FULL, 0, 0)
    h.moves.clear()
    second = check_request(h, d, *full(1, 2, 3))
    assert second.found == [2] and second.hit_tokens == 2 * FULL and second.prefill_tokens == FULL
    assert (second.new_tokens, second.recomputed_tokens, second.stranded) == (0, FULL, 1)
    # block 3 is recomputed beside its resident copy (key -1); the old copy, the LRU victim, is dropped
    assert h.moves == [Move(-1, None, 0, 0, B16), Move(3, 0, None, B16, 0)]
    assert h.where == {1: 0, 2: 0, -1: 0} and h._copies == {3: [-1]} and h._owner == {-1: 3}
    assert h.find(3) == (-1, 0)
    assert h.stranded == [1] and h.drops == [1]


def test_n_minus_1_rule_makes_a_duplicate_and_eviction_drops_the_copy() -> None:
    """A fully cached prompt of exactly 2 full blocks hits 1 block and recomputes the other beside its
    resident copy; the next eviction of that block drops the extra copy (no demotion), and the block
    stays cached under the copy that is left."""
    h = make([3, 4], "lru")
    d = Driver(h, "prefix", FULL)
    check_request(h, d, *full(1, 2))
    s = check_request(h, d, *full(1, 2))
    assert s.hit_blocks == 1 and s.found == [1, 0] and s.stranded == 1 and s.recomputed_tokens == FULL
    assert h._copies == {2: [2, -1]} and h.where == {1: 0, 2: 0, -1: 0}
    # LRU order now: 2 (old copy), -1, 1 — a new block evicts the old copy of 2: dropped, not demoted
    h.moves.clear()
    check_request(h, d, *full(5))
    assert h.moves == [Move(5, None, 0, 0, B16), Move(2, 0, None, B16, 0)]
    assert h.demotions == [0, 0] and h.drops == [1, 0]
    assert h._copies == {2: [-1]} and h.find(2) == (-1, 0)
    # the block is still served, from the copy that is left; an ordinary victim (5) is demoted
    h.moves.clear()
    s = check_request(h, d, *full(1, 2, 7))
    assert s.hit_blocks == 2 and s.found == [2, 0] and s.stranded == 0
    assert h.moves == [Move(7, None, 0, 0, B16), Move(5, 0, 1, B16, B16)]
    assert h.demotions == [1, 0] and h.drops == [1, 0]


def test_partial_last_block_takes_a_slot_until_its_request_ends() -> None:
    h = make([2], "lru")
    d = Driver(h, "prefix", FULL)
    check_request(h, d, *full(9))
    h.moves.clear()
    s = check_request(h, d, [1, PARTIAL_BASE + 1], [FULL, 2])
    assert s.prompt_tokens == FULL + 2 and s.hit_blocks == 0 and s.stranded == 0
    # the partial block took the tier's second slot (evicting 9) under a key of its own, then left
    assert h.moves == [Move(1, None, 0, 0, B16), Move(-1, None, 0, 0, B16), Move(9, 0, None, B16, 0)]
    assert h.where == {1: 0} and h.used == [1] and h.peak == [2] and h._transient == set()
    assert PARTIAL_BASE + 1 not in h.where
    # read again: the full block is the cached prefix; the partial one is computed again, never cached
    s = check_request(h, d, [1, PARTIAL_BASE + 1], [FULL, 2])
    assert (s.hit_blocks, s.hit_tokens, s.prefill_tokens, s.new_tokens, s.recomputed_tokens) == (1, FULL, 2, 0, 2)
    assert h.where == {1: 0}
    # a prompt shorter than one block caches nothing
    s = check_request(h, d, [PARTIAL_BASE + 3], [3])
    assert s.hit_blocks == 0 and h.where == {1: 0}


@pytest.mark.parametrize(("policy", "stranded"), [("fifo", 2), ("lru", 1)])
def test_fifo_strands_a_chains_tail(policy: str, stranded: int) -> None:
    """FIFO evicts a chain's head before its tail: the tail stays resident but unusable (stranded).

    Tier of 5: [1], [7], [8] fill it; [1, 2, 3] hits 1 (its cap is 2: 2 would be cached too, had it
    been) and adds 2, 3. [9] evicts the oldest block: FIFO's is 1, the chain's head, so reading the
    chain again finds nothing and computes 2 and 3 beside their resident, stranded copies. LRU's
    oldest is 7 (the chain was released tail-first, its head last), so the chain's 2 blocks are
    served and only the last one is recomputed (the n-1 rule).
    """
    h = make([5], policy)
    d = Driver(h, "prefix", FULL)
    for req in ([1], [7], [8], [1, 2, 3], [9]):
        check_request(h, d, *full(*req))
    assert (1 in h.where) == (policy == "lru")
    s = check_request(h, d, *full(1, 2, 3))
    assert s.stranded == stranded == h.stranded[0]
    assert s.hit_blocks == (0 if policy == "fifo" else 2)
    assert s.recomputed_tokens == (3 if policy == "fifo" else 1) * FULL
    assert Counter(owner(h, k) for k in h.where)[3] >= 1
