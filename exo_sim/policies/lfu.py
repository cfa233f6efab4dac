"""LFU: evict the least frequently used block; among equals, the one that reached that count first.

Pseudocode::

    insert(x):  freq[x] = 1; append x to bucket[1]; min = 1
    hit(x):     move x from bucket[f] to the tail of bucket[f + 1]; freq[x] = f + 1
    victim():   pop the head (oldest arrival) of bucket[min]
    remove(x):  unlink x from bucket[freq[x]]

Under prefix reuse a release changes nothing: a chain's head is read by every request that shares
it, so it gathers the highest count and is evicted last; among blocks of equal count the one that
reached it first goes first (within a new chain, its head).

Reproduces libCacheSim's ``LFU.c`` (the O(1) frequency-list LFU, not ``LFUCpp``):

* a block's count starts at 1 on insertion and is forgotten when it leaves (no history);
* ties are broken FIFO *within a bucket*: a hit appends the block at the tail of its new bucket and
  eviction takes the head, so the victim is the block that reached the minimum count earliest;
* ``min`` is reset to 1 by every insertion.

Compiled (``exo_sim/native/lfu.c``): the O(1) frequency-list LFU. The non-empty buckets form a
doubly linked list in ascending order of count, so the first bucket is always the minimum (no lazy
search); each bucket is a doubly linked list of its keys in order of arrival at that count; a key
alone at its count relabels its bucket instead of moving (no allocation on the hottest blocks'
hits). Keys and buckets are nodes in arrays with an int64 hash map from key to node; the hierarchy
calls it through its C vtable, and the methods here call that same code. ``verify`` checks that
the buckets ascend, none is empty, and every key's links, bucket and index entry agree.
"""

from __future__ import annotations

from exo_sim._core import LFUPolicy
from exo_sim.policies import register

register("lfu")(LFUPolicy)

__all__ = ["LFUPolicy"]
