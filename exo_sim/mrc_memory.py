"""How much memory ``exo-mrc``'s exact curves take, said before any work, and held to a budget.

The exact curves (:mod:`exo_sim.mrc`) hold the whole trace as arrays. The estimate is a count of the
int64 (8 B) and bool (1 B) arrays alive at each pass's peak, read off the code — not a measurement;
``tests/test_mrc_memory.py`` checks it against tracemalloc's peak. With ``m`` references, ``R``
reuses (references to a block seen before, ``R <= m``) and ``S`` the power of two at or above ``R``
(:func:`~exo_sim.mrc.earlier_greater` pads its merge sort to ``S``):

* **every curve** holds the trace's block ids, tokens, write flags and read mask (18 B/reference),
  the requests' offsets (8 B each: at most one request per reference is assumed) and sorts a copy of
  the ids to count distinct blocks (+17): 43 B per reference;
* **LRU, one pass** (:func:`~exo_sim.mrc.stack_distances`): those 26 B, the previous occurrence and the
  distance (+16), and per reuse its position, its previous one and their difference (24 B), while
  the merge sort holds the counts (8 B per reuse) and, at its last level, eight arrays of ``S``
  int64 and one of ``S`` bools (65 B per padded slot): ``42 m + 32 R + 65 S``;
* **LRU under prefix reuse** (:func:`~exo_sim.mrc.prefix_lru_pass`): 84 B per reference for the
  request structure and the release order, 40 more for the released stream, then the same merge sort
  (``124 m + 24 R + 8 R + 65 S``); after it, the depth stage and the per-read thresholds bring the
  reference's arrays to about 288 B (``288 m``). The larger of the two is the peak.

``R`` is not known before the pass, so the estimate takes ``R = m`` (every reference a reuse): an
upper bound within the counts' precision, up to about 2x high for a trace with little reuse (``S``
rounds up). ``m`` is exact when the workload knows it (:meth:`~exo_sim.workloads.base.Workload.estimated_refs`:
generators, oracleGeneral from its file size); otherwise one first pass over the trace counts it (the
readers stream: that pass holds one chunk). Not counted: one chunk of the reader (a few MB), the
replays that draw non-LRU curves (separate processes, their own memory), and the decision core that
finishes a prefix curve where duplicate copies appear (``prefix_stack_distance+engine``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import psutil

from exo_sim.errors import ConfigError
from exo_sim.spec import Locator
from exo_sim.units import parse_bytes
from exo_sim.workloads.base import Workload

ARRAYS_BYTES_PER_REF = 43
"""Every curve: ids, tokens, write flags, read mask, offsets (26 B) and the sorted copy of the ids (17 B)."""
LRU_BYTES_PER_REF = 42
LRU_BYTES_PER_REUSE = 32
PREFIX_BYTES_PER_REF = 124
PREFIX_BYTES_PER_REUSE = 32
PREFIX_LATE_BYTES_PER_REF = 288
SORT_BYTES_PER_SLOT = 65
"""The merge sort's last level: eight int64 arrays and one bool array of ``S`` (padded) slots."""


def padded(n: int) -> int:
    """The power of two at or above ``n`` (0 for 0): the merge sort's row length."""
    return 0 if n <= 0 else 1 << (n - 1).bit_length()


def exact_curve_bytes(refs: int, policies: list[str], reuse: str) -> int:
    """Upper estimate of the bytes the exact curves of ``policies`` hold for ``refs`` references.

    ``reuse`` is ``hierarchy.reuse`` as resolved (``prefix`` or ``block``); see the module docstring.
    """
    need = ARRAYS_BYTES_PER_REF * refs
    if "lru" in policies:
        slots = SORT_BYTES_PER_SLOT * padded(refs)
        if reuse == "prefix":
            merge = (PREFIX_BYTES_PER_REF + PREFIX_BYTES_PER_REUSE) * refs + slots
            need = max(need, merge, PREFIX_LATE_BYTES_PER_REF * refs)
        else:
            need = max(need, (LRU_BYTES_PER_REF + LRU_BYTES_PER_REUSE) * refs + slots)
    return need


def count_refs(workload: Workload) -> tuple[int, str]:
    """The workload's block references and how they were learnt (its own count, or a first pass)."""
    known = workload.estimated_refs()
    if known is not None:
        return int(known), "known from the workload"
    return sum(chunk.n_refs for chunk in workload.chunks()), "counted in a first pass over the trace"


def default_budget() -> int:
    """Half of this machine's physical memory, in bytes."""
    return int(psutil.virtual_memory().total) // 2


def human_bytes(n: float) -> str:
    """``n`` bytes in decimal units, three significant figures (``1.5 GB``)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


@dataclass(frozen=True)
class MemoryEstimate:
    """What the exact curves will hold, and the budget they are held to (bytes)."""

    references: int
    how: str
    need_bytes: int
    budget_bytes: int

    def line(self) -> str:
        """One line for the user, printed before the work starts."""
        return (
            f"mrc: the exact curve needs at most about {human_bytes(self.need_bytes)} for "
            f"{self.references:,} references ({self.how}); mrc.memory_budget is {human_bytes(self.budget_bytes)}"
        )


def check_exact_curve_memory(
    cfg: Any, workload: Workload, policies: list[str], reuse: str, locate: Locator | None = None
) -> MemoryEstimate:
    """Estimate the exact curves' memory and refuse them beyond ``mrc.memory_budget``.

    ``mrc.memory_budget`` is a byte size (:mod:`exo_sim.units`; ``None``: half the machine's memory).

    Raises:
        ConfigError: on ``mrc.memory_budget`` when it is not a positive size, or when the estimate
            exceeds it (the message points at ``mrc.sample_rate``).
    """
    key = "mrc.memory_budget"
    where = locate(key) if locate else None
    raw = getattr(cfg.mrc, "memory_budget", None)
    budget = default_budget() if raw is None else parse_bytes(raw, key, where)
    if budget <= 0:
        raise ConfigError(key, f"must be a size > 0, got {raw}", where)
    refs, how = count_refs(workload)
    need = exact_curve_bytes(refs, policies, reuse)
    if need > budget:
        rate = 10.0 ** math.floor(math.log10(budget / need))
        if reuse == "prefix":  # exo_sim.mrc_sampling refuses to sample under prefix reuse
            instead = "read fewer requests (workload.max_requests; prefix-reuse curves cannot be sampled)"
        else:
            instead = f"sample the trace (mrc.sample_rate={rate:g} keeps about that fraction of its blocks)"
        raise ConfigError(
            key,
            f"is {human_bytes(budget)}, but the exact curve over {refs:,} references ({how}) needs about "
            f"{human_bytes(need)}; {instead} or raise mrc.memory_budget",
            where,
        )
    return MemoryEstimate(refs, how, need, budget)
