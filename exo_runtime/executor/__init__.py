"""The executor: carries out the decision core's moves with real bytes, a batch at a time.

The driver feeds requests to the shared :class:`~exo_sim.hierarchy.Hierarchy` (``record_moves=True``);
after each request (or part of one, when its moves would not fit the staging pool) it hands the new
moves to :meth:`Executor.apply`, which makes the memories agree with the core::

    apply(moves):
        for each block the moves touch:                                                  netting
            before = the tiers that physically hold it;  after = the tiers whose policy holds it now
            each tier in after - before is an addition, fed from the tier the moves carried it from
            (or born, when the core computed it); each tier in before - after is a removal
        group additions by link (source tier, destination tier), sources in slot order
        allocate every destination slot: free slots first, then slots this batch's       slots
        removals give up
        an addition whose destination slot still holds a block another addition must     schedule
        read waits for that read; the others are ready
        stage (read into the staging pool) whatever durable additions wait on, so they are all ready
        repeat: take the ready additions of one link (durable tiers first, coldest first) and
            stream them through a small reused bounce buffer: read a chunk (one batched  copy_paths
            read), check it, re-encode it if the codec changes, write it (one batched    checks, recode
            write); each read releases the additions waiting on its slot
            when nothing is ready but some wait (a cycle: a promoted block and the victim that takes
            its slot), stage one waited-on source to break it
        free the removals' slots that were not reused; record the new copies (and        books
        manifest entries)

Ordering by these dependencies lets a tier give up a promoted block's slot to a demoted victim in the
same batch while a victim's cascade runs coldest first, each block read just before it is written:
blocks go through a bounce buffer of about :data:`STREAM_BYTES` and from source to destination while
still in the CPU's cache, as in a raw copy; only cycle breakers are staged. Nothing is allocated per
block (:mod:`~exo_runtime.executor.workspace`). Each batched read and write is timed and counted
against its link (:mod:`~exo_runtime.executor.linkio`), codec work against its codec
(:mod:`~exo_runtime.executor.meters`).

A write the medium refuses for lack of space undoes the batch and raises
:class:`~exo_runtime.errors.DiskFullError` (:mod:`~exo_runtime.executor.slots`). A read whose bytes are
not the ones written is reported corrupted and never used (:mod:`~exo_runtime.executor.checks`): the
block is regenerated instead, and a copy the core keeps in that tier is rewritten
(:mod:`~exo_runtime.executor.births`). How duplicate and partial blocks' keys map to data, and what a
durable tier's manifest lists, is in :mod:`~exo_runtime.executor.books`.

One module per job: ``netting`` (what a batch nets to), ``slots`` (allocation, reuse, undo),
``schedule`` (dependency order, staging, cycle breaking), ``copy_paths`` (born, staged, view and
streamed copies), ``recode`` (re-encoding), ``checks`` (read checks), ``births`` (born, regenerated
and repaired data), ``books`` (copies, manifests, commits), ``linkio`` and ``meters`` (timed I/O and
what was measured), ``tiers`` and ``workspace`` (the media and the buffers), ``records`` (the types
they share); ``core`` holds :class:`Executor`, which composes them.
"""

from exo_runtime.executor.core import Executor
from exo_runtime.executor.records import (
    BIRTH,
    BirthSource,
    Copy,
    Corruption,
    Entry,
    recovered_copy,
)
from exo_runtime.executor.workspace import STREAM_BYTES

__all__ = ["BIRTH", "STREAM_BYTES", "BirthSource", "Copy", "Corruption", "Entry", "Executor", "recovered_copy"]
