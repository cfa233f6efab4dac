"""What a batch of moves nets to: per block, the tiers it must be added to and removed from.

The core records each move (a block carried from one tier to another, or born into one); several may
touch one block in a batch (a promotion, then the demotion of the same block as a victim). Only the
net result is carried out::

    for each block the moves touch:
        before = the tiers that physically hold it;  after = the tiers whose policy holds it now
        each tier in after - before is an addition, fed from the tier the moves carried it from
        (or born, when the core computed it); each tier in before - after is a removal
    group additions by link (source tier, destination tier), sources in slot order;
    durable destinations first, then coldest first

A partial block the core freed at the end of its request (no move says so) nets to its removal from
every tier that holds it.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence

from exo_runtime.executor.books import Books
from exo_runtime.executor.records import BIRTH, Copy, LinkGroup
from exo_sim.hierarchy import Move

Origins = dict[int, dict[int, int]]
"""Block -> tier -> the tier its copy there comes from (itself, when already held; or :data:`BIRTH`)."""


def freed_partials(books: Books, resident: Container[int]) -> Origins:
    """Origins of the partial blocks held that the core has let go (``resident``: the keys it still has).

    Keys the core freed and no tier holds any more are forgotten here.
    """
    origin: Origins = {}
    if books.transient:
        copies = books.copies
        for key in list(books.transient):
            if key not in resident:
                held = copies.get(key)
                if held:
                    origin[key] = {k: k for k in held}
                else:
                    books.transient.discard(key)
    return origin


def net(
    origin: Origins,
    moves: Sequence[Move],
    books: Books,
    holds: Callable[[int, int], bool],
    usable: list[int],
    durable: list[bool],
) -> tuple[list[LinkGroup], dict[int, list[int]]]:
    """The additions (grouped by link, in the order they are carried out) and removals (per tier) of ``moves``.

    Args:
        origin: origins already known (:func:`freed_partials`); completed in place.
        moves: the core's moves of this batch.
        books: the executor's books (a new key of the core's own is registered there).
        holds: ``holds(k, b)``: whether the core's policy keeps block ``b`` in tier ``k`` now.
        usable: the tiers with a store.
        durable: per tier, whether it is durable.
    """
    copies = books.copies
    for b, src, dst, _, _ in moves:
        o = origin.get(b)
        if o is None:
            before = copies.get(b)
            o = origin[b] = {k: k for k in before} if before else {}
        if dst is not None:
            o[dst] = BIRTH if src is None else o[src]
    groups: dict[tuple[int, int], list[int]] = {}
    removals: dict[int, list[int]] = {}
    empty: dict[int, Copy] = {}
    for b, o in origin.items():
        before = copies.get(b, empty)
        for k in usable:
            if holds(k, b):
                if k not in before:
                    if b < 0 and o[k] == BIRTH:
                        books.register(b)
                    groups.setdefault((o[k], k), []).append(b)
            elif k in before:
                removals.setdefault(k, []).append(b)
    plans = []
    for (s, k), blocks in groups.items():
        if s != BIRTH:
            blocks.sort(key=lambda b: copies[b][s].slot)
        plans.append(LinkGroup(s, k, blocks))
    plans.sort(key=lambda p: (not durable[p.dst], -p.dst))
    return plans, removals
