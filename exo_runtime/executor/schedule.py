"""The order a batch's additions run in: each reused slot is read before it is overwritten.

::

    an addition whose destination slot still holds a block another addition must read waits for
    that read; the others are ready
    stage (read into the staging pool) whatever durable additions wait on, so they are all ready
    repeat: take the ready additions of one link (durable tiers first, coldest first) and carry
        them out; each read releases the additions waiting on its slot
        when nothing is ready but some wait (a cycle: a promoted block and the victim that takes
        its slot), stage one waited-on source to break it

Ordering by these dependencies lets a tier give up a promoted block's slot to a demoted victim in the
same batch while a victim's cascade runs coldest first, each block read just before it is written;
only cycle breakers are staged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from exo_runtime.executor.records import BIRTH, Copy, LinkGroup, Release

Slot = tuple[int, int]
"""``(tier, slot)``."""


def schedule(
    plans: list[LinkGroup],
    reused: dict[int, set[int]],
    copies: dict[int, dict[int, Copy]],
    durable: list[bool],
    carry: Callable[[LinkGroup, list[int], Release], None],
    stage: Callable[[LinkGroup, int], torch.Tensor],
) -> None:
    """Run every addition of ``plans`` in an order that reads each reused slot before overwriting it.

    Args:
        plans: the batch's link groups, in priority order, their slots allocated.
        reused: per tier, the slots of this batch's removals that additions took.
        copies: the executor's books of copies (the additions' source slots).
        durable: per tier, whether it is durable (its writes never wait).
        carry: ``carry(p, idx, release)`` carries out additions ``idx`` of ``p``, calling ``release``
            with the ones whose source is read.
        stage: ``stage(p, i)`` reads addition ``i`` of ``p``'s source into a staging row and returns it.
    """
    unread: dict[Slot, list[tuple[LinkGroup, int]]] = {}  # reused slot -> its readers
    for p in plans:
        taken = reused.get(p.src) if p.src != BIRTH else None
        if taken:
            for i, b in enumerate(p.blocks):
                slot = copies[b][p.src].slot
                if slot in taken:
                    unread.setdefault((p.src, slot), []).append((p, i))
    waiting: dict[Slot, list[tuple[LinkGroup, int]]] = {}
    ready: dict[int, list[int]] = {}
    for n, p in enumerate(plans):
        ready[n] = []
        for i, slot in enumerate(p.slots):
            key = (p.dst, slot)
            if key in unread:
                waiting.setdefault(key, []).append((p, i))
            else:
                ready[n].append(i)
    index = {id(p): n for n, p in enumerate(plans)}

    def release(p: LinkGroup, idx: list[int]) -> None:
        if p.src == BIRTH or not unread:
            return
        for i in idx:
            key = (p.src, copies[p.blocks[i]][p.src].slot)
            readers = unread.get(key)
            if readers is None:
                continue
            readers.remove((p, i))
            if not readers:
                del unread[key]
                for q, j in waiting.pop(key, []):
                    ready[index[id(q)]].append(j)

    def stage_readers(key: Slot) -> None:
        for p, i in list(unread.get(key, [])):
            if i not in p.staged:
                p.staged[i] = stage(p, i)
            release(p, [i])

    for key in [k for k in waiting if durable[k[0]]]:  # durable writes never wait
        stage_readers(key)
    while True:
        pick = next((n for n, idx in ready.items() if idx), None)  # plans are in priority order
        if pick is not None:
            p, idx = plans[pick], sorted(ready[pick])
            ready[pick] = []
            carry(p, idx, release)
            continue
        if not waiting:
            return
        stage_readers(next(iter(waiting)))  # a cycle: stage one waited-on source to break it
