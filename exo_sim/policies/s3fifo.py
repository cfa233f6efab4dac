"""S3-FIFO: a small probationary FIFO, a main FIFO run as a 2-bit CLOCK, and a ghost FIFO of keys.

Pseudocode (S = small, M = main, G = ghost; ``freq`` counts hits while resident)::

    insert(x):  if x in G: remove x from G; put x in M          # it came back soon: keep it longer
                elif no eviction yet and S is full: put x in M
                else: put x in S
                freq[x] = 0
    hit(x):     freq[x] += 1
    victim():   if |M| > M_size or S is empty: evict_main()
                else: evict_small(), then evict_main() if S ran empty without evicting
    evict_small: pop the oldest y of S:
                 if freq[y] >= 2: move y to M with freq 0 and go on; else evict y and append y to G
    evict_main:  pop the oldest y of M:
                 if freq[y] >= 1: reinsert y at M's new end with freq min(freq, 3) - 1 and go on
                 else: evict y

This reproduces libCacheSim's ``S3FIFO.c`` (the 2024 version, default parameters
``small-size-ratio=0.10, ghost-size-ratio=0.90, move-to-main-threshold=2``) block for block:

* sizes are ``S_size = int(capacity * 0.1)``, ``M_size = capacity - S_size`` and
  ``G_size = int(capacity * 0.9)`` keys (no ghost when that is 0), with C's truncating casts;
* a block needs *two* hits in S (``freq >= 2``) to be promoted to M, and arrives there with freq 0;
* before the very first eviction, new blocks go to M once S is full (the ``has_evicted`` flag);
* a promotion from S to M does not end an eviction: S keeps being drained until one block is really
  evicted; if S empties first, M evicts (libCacheSim's outer evict loop does the same);
* M is a CLOCK with a 2-bit counter: on its turn a block with freq f >= 1 goes back with min(f, 3) - 1.

libCacheSim removes an incoming key from G when it *looks it up*, before it makes room; here the
policy learns the key only at ``insert``, after the victims. So G is trimmed lazily: victims are
appended to G untrimmed, and ``insert`` first takes the key out of G, then trims G to ``G_size`` from
its old end. A FIFO of bounded size after a run of appends holds the newest ``G_size`` keys, so this
gives exactly libCacheSim's ghost (the incoming key is never one of the victims just appended).

Deviations, on purpose:

* ``remove(x)`` (a block promoted out of the tier) does **not** put x in G: it leaves the tier
  because it is hot, not because it was evicted.
* libCacheSim refuses capacities with ``S_size == 0`` (< 10 blocks) and, for 10-19 blocks
  (``S_size == 1``), admits nothing at all that is not a ghost hit (its ``S3FIFO_insert`` returns
  NULL when the object is as large as S), so its miss ratio there is 1.0. Here ``S_size`` is at
  least 1 and a block always fits: below 20 blocks this is a sensible S3-FIFO, not libCacheSim's.

Under prefix reuse a release changes nothing. New blocks enter the small FIFO head first, so a
one-off chain leaves head first; the shared heads that are read again reach the main FIFO.

Compiled (``exo_sim/native/s3fifo.c``): the three FIFOs are doubly linked lists over one array of
17-byte nodes, and one int64 hash map names the node of every resident key and every ghost. A
node's byte holds its queue and its hit counter, which saturates at 3: the rules above only ask
whether it is >= 1 or >= 2 and what ``min(freq, 3)`` is, so the decisions are those of an unbounded
count. ``queue_of(key)`` says which FIFO holds a key (``"small"``, ``"main"``, ``"ghost"`` or
``None``); ``small_size``, ``main_size`` and ``ghost_size`` are read-only. The hierarchy calls the C
vtable; the methods here call that same code.
"""

from __future__ import annotations

from exo_sim._core import S3FIFOPolicy
from exo_sim.policies import register

register("s3fifo")(S3FIFOPolicy)

__all__ = ["S3FIFOPolicy"]
