"""Fewer garbage collections while a long run allocates many short-lived objects.

Every clock (the timed model, the runtime's serving loop) walks requests through the decision core,
allocating millions of small objects while the core's index and policies hold hundreds of thousands
of long-lived ones; at the default thresholds the cyclic collector walks those again and again, and
in the runtime its pauses land inside timed prefills. :func:`fewer_collections` freezes what exists
and collects the youngest generation every 100,000 allocations instead of 700, as serving engines
freeze their start-up objects.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often, and not over what existed before, for a while.

    A run allocates millions of short-lived objects (moves, jobs, hop lists) while the decision
    core's index and policies hold hundreds of thousands of long-lived ones; at the default
    thresholds the collector walks those again and again (about a tenth of the run's time). The
    objects alive at the start are frozen out of collections and the youngest generation is
    collected every 100,000 allocations instead of 700; both are restored at the end.
    """
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


__all__ = ["fewer_collections"]
