"""The decision core: whole move timelines on hand-computed cases, and invariants under hypothesis."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from exo_sim.errors import ConfigError
from exo_sim.hierarchy import Hierarchy, Move
from exo_sim.policies import policy_names
from tests.hierarchies import small_spec

B16 = 2 * 4 * 2  # tiny payload, one token per block: 8 elements x 2 B (fp16)


def run(h: Hierarchy, seq: list[int]) -> list[list[Move]]:
    out = []
    for b in seq:
        h.moves.clear()
        h.access(b)
        out.append(list(h.moves))
        h.verify()
    return out


def test_exclusive_lru_timeline() -> None:
    h = Hierarchy(small_spec([2, 2]), record_moves=True)
    moves = run(h, [1, 2, 3, 1, 4, 5])
    assert moves == [
        [Move(1, None, 0, 0, B16)],
        [Move(2, None, 0, 0, B16)],
        [Move(3, None, 0, 0, B16), Move(1, 0, 1, B16, B16)],  # 1 is LRU in t0 -> demoted
        [Move(1, 1, 0, B16, B16), Move(2, 0, 1, B16, B16)],  # hit in t1: promoted, 2 demoted
        [Move(4, None, 0, 0, B16), Move(3, 0, 1, B16, B16)],  # t1 now {2, 3}
        # t0 {1, 4} evicts 1 into full t1 {2, 3}: t1 evicts its LRU (2), dropped off the last tier
        [Move(5, None, 0, 0, B16), Move(1, 0, 1, B16, B16), Move(2, 1, None, B16, 0)],
    ]
    c = h.counters()
    assert (c[0].hits, c[0].misses, c[1].hits, c[1].misses) == (0, 6, 1, 5)
    assert (c[0].evictions, c[0].demotions, c[1].evictions, c[1].drops) == (4, 4, 1, 1)
    assert h.recomputed_blocks == 5 and c[1].promotions == 1
    assert h.where == {5: 0, 4: 0, 3: 1, 1: 1}


def test_codec_change_changes_bytes() -> None:
    h = Hierarchy(small_spec([1, 1], codecs=["int8", "fp32"]), record_moves=True)
    run(h, [1])
    h.moves.clear()
    h.access(2)
    int8 = 8 + 2  # 8 elements in one int8 group, one 2-byte scale
    fp32 = 8 * 4
    assert h.moves == [Move(2, None, 0, 0, int8), Move(1, 0, 1, int8, fp32)]


def test_write_through_persists_and_drops_clean_victims() -> None:
    h = Hierarchy(small_spec([1, 1, 4], mode="write_through"), record_moves=True)
    moves = run(h, [1, 2, 3, 1])
    assert moves[0] == [Move(1, None, 0, 0, B16), Move(1, 0, 2, B16, B16)]
    # 2 displaces 1 from t0 into t1 (t1 is not the last tier: a real demotion)
    assert moves[1] == [Move(2, None, 0, 0, B16), Move(1, 0, 1, B16, B16), Move(2, 0, 2, B16, B16)]
    # 3 displaces 2 into t1, whose victim 1 is clean in the last tier: dropped without a write
    assert moves[2] == [
        Move(3, None, 0, 0, B16),
        Move(2, 0, 1, B16, B16),
        Move(1, 1, None, B16, 0),
        Move(3, 0, 2, B16, B16),
    ]
    # 1 is found in the last tier and copied up; the last tier keeps it
    assert moves[3] == [Move(1, 2, 0, B16, B16), Move(3, 0, 1, B16, B16), Move(2, 1, None, B16, 0)]
    c = h.counters()
    assert c[2].hits == 1 and c[2].used_blocks == 3 and h.where[1] == 0
    assert h.recomputed_blocks == 3


def test_watermarks_evict_down_to_low() -> None:
    # 10 blocks, high 0.8 -> 8, low 0.5 -> 5: the 9th block evicts 4 (8 -> 4) before it goes in
    h = Hierarchy(small_spec([10, 100], high=0.8, low=0.5), record_moves=True)
    run(h, list(range(8)))
    assert h.used[0] == 8
    h.moves.clear()
    h.access(8)
    assert h.moves[0] == Move(8, None, 0, 0, B16)
    assert [m.block for m in h.moves[1:]] == [0, 1, 2, 3]
    assert h.used == [5, 4]
    assert h.counters()[0].evictions == 4


def test_bypassed_tier_holds_nothing() -> None:
    h = Hierarchy(small_spec([1, 8], high=0.5, low=0.5), record_moves=True)  # t0: floor(0.5) = 0
    run(h, [1, 2, 1])
    assert h.used == [0, 2]
    c = h.counters()
    assert c[0].hits == 0 and c[0].misses == 3 and c[1].hits == 1


def test_same_block_twice_and_no_reuse() -> None:
    h = Hierarchy(small_spec([2]))
    h.access_many([7, 7, 7])
    assert h.counters()[0].hits == 2
    h2 = Hierarchy(small_spec([2]))
    h2.access_many(list(range(100)))
    c = h2.counters()[0]
    assert (c.hits, c.misses, c.evictions, c.drops) == (0, 100, 98, 98)


def test_mean_and_peak_occupancy_exact() -> None:
    h = Hierarchy(small_spec([3]))
    h.access_many([1, 2, 3, 4])  # occupancy after each access: 1, 2, 3, 3
    c = h.counters()[0]
    # the mean over accesses of the occupancy each access leaves behind
    assert c.peak_blocks == 3
    assert c.mean_blocks == pytest.approx((1 + 2 + 3 + 3) / 4)


seqs = st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=300)


@settings(max_examples=60, deadline=None)
@given(
    seq=seqs,
    caps=st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=4),
    policy=st.sampled_from([p for p in policy_names() if p != "belady"]),
    mode=st.sampled_from(["exclusive", "write_through"]),
    marks=st.sampled_from([(1.0, 1.0), (0.9, 0.5), (1.0, 0.3)]),
)
def test_invariants(seq, caps, policy, mode, marks) -> None:  # type: ignore[no-untyped-def]
    try:
        spec = small_spec(caps, policy=policy, mode=mode, high=marks[0], low=marks[1])
    except ConfigError:  # every tier too small for one block under the watermark: refused
        assume(False)
    h = Hierarchy(spec, record_moves=True)
    seen = 0
    for b in seq:
        h.access(b)
        h.verify()  # capacities, bytes = sum of resident blocks, exclusivity, index consistency
        # the counters' flows are exactly the moves listed for this access
        listed = Counter((m.src, m.dst) for m in h.moves[seen:])
        seen = len(h.moves)
        assert h.take_flows() == dict(listed)
    c = h.counters()
    assert c[0].hits + c[0].misses == len(seq)
    assert all(t.used_blocks <= s.high_blocks for t, s in zip(c, spec.tiers, strict=True))
    # same input -> same output
    again = Hierarchy(spec, record_moves=True)
    for b in seq:
        again.access(b)
    assert again.moves == h.moves and again.counters() == c
