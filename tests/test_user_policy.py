"""A policy written in Python by a user plugs into the registry and runs through the compiled core.

The compiled core (``exo_sim/native``) calls a native policy through its C vtable and any other
:class:`~exo_sim.policies.base.Policy` through its bound Python methods. To show the Python path
decides exactly as the native one, a plain-Python LRU (written here, from the pseudocode in
``exo_sim/policies/lru.py``) must give the native LRU's every move, counter and index, over random
workloads in three tiers, under block reuse and under prefix reuse, exclusive and write-through.
"""

from __future__ import annotations

import gc
import weakref
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np
import pytest

from exo_sim.driver import Driver
from exo_sim.hierarchy import Hierarchy
from exo_sim.policies import NEVER, POLICIES, Policy, get_policy
from exo_sim.policies.base import PolicyInvariantError
from exo_sim.policies.lru import LRUPolicy
from tests.hierarchies import small_spec


class PyLRU(Policy):
    """LRU in plain Python: an OrderedDict whose first key is the least recently used."""

    def __init__(self, capacity_blocks: int) -> None:
        super().__init__(capacity_blocks)
        self.order: OrderedDict[int, None] = OrderedDict()
        self.release = self.access  # a finished request's blocks move to the MRU end, tail first

    def insert(self, key: int, next_access: int = NEVER) -> None:
        self.order[key] = None

    def access(self, key: int, next_access: int = NEVER) -> None:
        self.order.move_to_end(key)

    def remove(self, key: int) -> None:
        del self.order[key]

    def victim(self) -> int:
        return self.order.popitem(last=False)[0]

    def __len__(self) -> int:
        return len(self.order)

    def __contains__(self, key: object) -> bool:
        return key in self.order


class Broken(PyLRU):
    """A user policy whose victim() fails: the error reaches the caller unchanged."""

    def victim(self) -> int:
        raise RuntimeError("victim() of a user policy failed")


@pytest.fixture
def user_policies() -> Iterator[None]:
    POLICIES.register_as("user_lru")(PyLRU)
    POLICIES.register_as("user_broken")(Broken)
    try:
        yield
    finally:
        POLICIES.unregister("user_lru")
        POLICIES.unregister("user_broken")


def requests(seed: int, n: int = 300) -> list[tuple[list[int], list[int]]]:
    """Chained requests (prefix trees of 40 nodes) with some partial last blocks."""
    rng = np.random.default_rng(seed)
    parent = [-1 if i < 3 else int(rng.integers(0, i)) for i in range(40)]
    out = []
    for _ in range(n):
        node = int(rng.integers(0, 40))
        chain = []
        while node != -1:
            chain.append(node)
            node = parent[node]
        chain.reverse()
        tokens = [4] * len(chain)
        if rng.random() < 0.3:
            chain.append(1000 + len(out))
            tokens.append(int(rng.integers(1, 4)))
        out.append((chain, tokens))
    return out


def state(h: Hierarchy) -> tuple[object, ...]:
    return (list(h.moves), h.counters(), dict(h.where), h._copies, h._owner, list(h.used), list(h.peak))


@pytest.mark.parametrize("reuse", ["block", "prefix"])
@pytest.mark.parametrize("mode", ["exclusive", "write_through"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_python_policy_decides_as_the_native_one(user_policies: None, reuse: str, mode: str, seed: int) -> None:
    assert get_policy("user_lru") is PyLRU and get_policy("lru") is LRUPolicy
    runs = []
    for name in ("lru", "user_lru"):
        h = Hierarchy(small_spec([6, 5, 7], policy=name, mode=mode), record_moves=True)
        assert isinstance(h.policies[0], PyLRU if name == "user_lru" else LRUPolicy)
        d = Driver(h, reuse, 4)
        for blocks, tokens in requests(seed):
            d.request(blocks, tokens)
        h.verify()
        runs.append(state(h))
    assert runs[0][0], "the workload made no moves"
    assert runs[0] == runs[1]


def test_python_policy_in_the_replay_fast_path(user_policies: None) -> None:
    rng = np.random.default_rng(5)
    blocks = rng.zipf(1.2, 20_000).astype(np.int64) % 500
    hits = []
    for name in ("lru", "user_lru"):
        h = Hierarchy(small_spec([20, 30, 50], policy=name))
        h.access_many(blocks)
        hits.append((h.hits, h.promotions, h.demotions, h.drops))
    assert hits[0] == hits[1] and sum(hits[0][0]) > 0


def test_a_user_policys_error_reaches_the_caller(user_policies: None) -> None:
    h = Hierarchy(small_spec([2], policy="user_broken"))
    h.access_many([1, 2])
    with pytest.raises(RuntimeError, match="victim\\(\\) of a user policy failed"):
        h.access_many([3])


def test_a_hierarchy_in_a_cycle_with_its_user_policy_is_collected(user_policies: None) -> None:
    """The core holds a Python policy and its bound methods; the collector must see all of them."""
    h = Hierarchy(small_spec([2, 3], policy="user_lru"))
    h.access_many([1, 2, 3])
    h.policies[0].owner = h  # type: ignore[union-attr]  # a cycle: hierarchy -> policy -> hierarchy
    ref = weakref.ref(h)
    del h
    gc.collect()
    assert ref() is None


def test_native_policy_invariants_are_checked() -> None:
    policy = get_policy("lru")(2)
    policy.insert(1)
    policy.insert(2)
    policy.verify()
    assert isinstance(policy, Policy) and policy.capacity_blocks == 2
    with pytest.raises(KeyError):
        policy.remove(7)
    policy.insert(3)  # over capacity: the hierarchy never does this, verify() says so
    with pytest.raises(PolicyInvariantError, match="exceed capacity 2"):
        policy.verify()
