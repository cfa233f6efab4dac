"""Block size conversion: deterministic splitting of a trace's blocks into the run's smaller blocks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exo_sim.blocksplit import FRESH_ID_BASE, BlockSplit, SplitRangeError, whole_blocks
from exo_sim.workloads.mooncake import MooncakeWorkload, MooncakeWorkloadConfig
from tests.conftest import trace_path


def test_identity_keeps_ids_and_tokens() -> None:
    ids, tokens, counts = BlockSplit(512, 512).split(np.array([7, 3, 7]), np.array([512, 512, 100]))
    assert ids.tolist() == [7, 3, 7]
    assert tokens.tolist() == [512, 512, 100]
    assert counts.tolist() == [1, 1, 1]


def test_512_to_256_full_and_partial_blocks() -> None:
    ids, tokens, counts = BlockSplit(512, 256).split(np.array([5, 9, 9, 4]), np.array([512, 300, 512, 200]))
    assert ids.tolist() == [10, 11, 18, 19, 18, 19, 8]
    assert tokens.tolist() == [256, 256, 256, 44, 256, 256, 200]
    assert counts.tolist() == [2, 2, 2, 1]


def test_512_to_16_gives_32_sub_blocks() -> None:
    ids, tokens, counts = BlockSplit(512, 16).split(np.array([1]), np.array([512]))
    assert ids.tolist() == list(range(32, 64))
    assert tokens.tolist() == [16] * 32


def test_offsets_follow_the_split() -> None:
    _, _, counts = BlockSplit(512, 256).split(np.array([1, 2, 3]), np.array([512, 512, 10]))
    # request 0 = source blocks 0..1, request 1 = source block 2
    assert BlockSplit.offsets(np.array([0, 2, 3]), counts).tolist() == [0, 4, 5]


@pytest.mark.parametrize("source,target", [(512, 384), (512, 0), (0, 16), (100, 200)])
def test_sizes_that_do_not_divide_are_refused(source: int, target: int) -> None:
    with pytest.raises(ValueError):
        BlockSplit(source, target)


def test_ids_out_of_range_are_refused() -> None:
    split = BlockSplit(512, 16)
    assert split.id_limit == FRESH_ID_BASE // 32
    with pytest.raises(SplitRangeError) as err:
        split.split(np.array([0, -1]), np.array([512, 512]))
    assert err.value.index == 1
    with pytest.raises(SplitRangeError):
        split.split(np.array([split.id_limit]), np.array([512]))


@settings(max_examples=60, deadline=None)
@given(
    factor_log2=st.integers(0, 6),
    blocks=st.lists(st.tuples(st.integers(0, 40), st.integers(1, 512)), min_size=0, max_size=60),
)
def test_split_is_a_faithful_refinement(factor_log2: int, blocks: list[tuple[int, int]]) -> None:
    """Tokens are preserved, equal sources give equal blocks, distinct sources never share one."""
    source = 512
    target = source >> factor_log2
    # a trace block id names its content: give each id one token count
    tokens_of = {h: r for h, r in blocks}
    ids_in = np.array([h for h, _ in blocks], dtype=np.int64)
    tok_in = np.array([tokens_of[h] for h, _ in blocks], dtype=np.int64)
    ids, tokens, counts = BlockSplit(source, target).split(ids_in, tok_in)
    assert counts.tolist() == [math.ceil(r / target) for r in tok_in.tolist()]
    assert int(tokens.sum()) == int(tok_in.sum())
    assert all(0 < t <= target for t in tokens.tolist())
    starts = np.concatenate(([0], np.cumsum(counts)))
    owner: dict[int, int] = {}
    for i, h in enumerate(ids_in.tolist()):
        sub = ids[starts[i] : starts[i + 1]].tolist()
        for b in sub:
            assert owner.setdefault(b, h) == h  # never shared by two source ids
        again = np.flatnonzero(ids_in == h)[0]
        assert sub == ids[starts[again] : starts[again + 1]].tolist()  # same source, same blocks


def test_whole_blocks() -> None:
    counts, tokens = whole_blocks(np.array([0, 1, 256, 257, 600]), 256)
    assert counts.tolist() == [0, 1, 1, 2, 3]
    assert tokens.tolist() == [1, 256, 256, 1, 256, 256, 88]


def test_mooncake_reuse_is_kept_at_every_block_size() -> None:
    """Distinct blocks at 256 and 16 tokens follow from each distinct hash id's token count."""
    path = trace_path("mooncake/synthetic_trace.jsonl")
    tokens_of: dict[int, int] = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            ids = r["hash_ids"]
            for j, h in enumerate(ids):
                tokens_of[h] = 512 if j < len(ids) - 1 else r["input_length"] - 512 * (len(ids) - 1)
    for bt in (512, 256, 16):
        w = MooncakeWorkload(MooncakeWorkloadConfig(path=str(path)), bt)
        w.validate()
        blocks = np.concatenate([c.blocks for c in w.chunks()])
        expected = sum(math.ceil(t / bt) for t in tokens_of.values())
        assert np.unique(blocks).shape[0] == expected
