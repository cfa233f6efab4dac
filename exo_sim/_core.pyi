"""Type stub of the compiled decision core (``exo_sim/native/*.c``)."""

from collections.abc import Sequence
from typing import Any, ClassVar

from exo_sim.policies.base import Policy

NEVER: int

class NativePolicy(Policy):
    """Base of the compiled policies: the :class:`Policy` interface over a C vtable."""

    name: ClassVar[str]
    needs_future: ClassVar[bool]
    def __init__(self, capacity_blocks: int) -> None: ...
    def insert(self, key: int, next_access: int = ...) -> None: ...
    def access(self, key: int, next_access: int = ...) -> None: ...
    def remove(self, key: int) -> None: ...
    def victim(self) -> int: ...
    def verify(self) -> None: ...
    def nbytes(self) -> int: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: object) -> bool: ...

class LRUPolicy(NativePolicy): ...
class FIFOPolicy(NativePolicy): ...

class ARCPolicy(NativePolicy):
    """ARC as libCacheSim implements it (``exo_sim/native/arc.c``)."""

    @property
    def p(self) -> float: ...
    def prepare_insert(self, key: int) -> None: ...
    def list_of(self, key: int) -> str | None: ...

class LFUPolicy(NativePolicy):
    """LFU with FIFO tie-breaking per frequency, as libCacheSim's (``exo_sim/native/lfu.c``)."""

class BeladyPolicy(NativePolicy):
    """Belady's MIN over each access's ``next_access`` (``exo_sim/native/belady.c``)."""

class SievePolicy(NativePolicy):
    """SIEVE as libCacheSim implements it (``exo_sim/native/sieve.c``)."""

    def touch(self, key: int) -> None: ...

class S3FIFOPolicy(NativePolicy):
    """S3-FIFO as libCacheSim implements it (``exo_sim/native/s3fifo.c``)."""

    @property
    def small_size(self) -> int: ...
    @property
    def main_size(self) -> int: ...
    @property
    def ghost_size(self) -> int: ...
    def touch(self, key: int) -> None: ...
    def queue_of(self, key: int) -> str | None: ...

class KeySet:
    """A set of int64 keys (16 bytes a slot)."""

    def add(self, key: int) -> bool: ...
    def update(self, keys: Sequence[int] | Any) -> int: ...
    def nbytes(self) -> int: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: object) -> bool: ...

class HierarchyCore:
    """The decision core over a hierarchy's tiers."""

    used: list[int]
    peak: list[int]
    hits: list[int]
    promotions: list[int]
    demotions: list[int]
    drops: list[int]
    stranded: list[int]
    _change_time: list[int]
    _high: list[int]
    _evict_to: list[int]
    _bytes: list[int]
    _below: list[int | None]
    _pinned: list[int]
    _pinned_set: set[int]
    _copies: dict[int, list[int]]
    _owner: dict[int, int]
    _transient: set[int]
    accesses: int
    new_blocks: int
    recomputed_blocks: int
    persists: int
    now: int
    top: int
    last: int
    n_tiers: int
    write_through: bool
    needs_future: bool
    record_moves: bool
    policies: list[Policy | None]
    moves: list[Any]
    def __init__(
        self,
        policies: Sequence[Policy | None],
        high: Sequence[int],
        evict_to: Sequence[int],
        block_bytes: Sequence[int],
        write_through: bool,
        record_moves: bool,
        move_type: type,
    ) -> None: ...
    def access_many(self, blocks: Sequence[int] | Any, next_access: Sequence[int] | Any | None = None) -> None: ...
    def write(self, block: int, next_access: int = ...) -> None: ...
    def preload(self, k: int, blocks: Sequence[int]) -> list[int]: ...
    def find(self, b: int) -> tuple[int, int] | None: ...
    def use(self, key: int, tier: int, next_access: int = ...) -> None: ...
    def compute(self, b: int, next_access: int = ..., cacheable: bool = True, read: bool = True) -> None: ...
    def take_flows(self) -> dict[tuple[int | None, int | None], int]:
        """Moves since the last call, counted by ``(src, dst)``; no move list needed.

        Every move the core makes is one of: computed -> top (``(None, top)``), a promotion
        ``(t, top)``, a demotion ``(k, next usable tier)``, a drop ``(k, None)`` or a write-through
        persist ``(top, last)``. So the counters alone give, per request, exactly the counts that
        ``record_moves`` would list: the timed model uses this instead of the list.
        """
    def end_request(self) -> None: ...
    def holds(self, k: int, key: int) -> bool: ...
    def held(self, k: int) -> int: ...
    def tier_of(self, key: int) -> int | None: ...
    def where_dict(self) -> dict[int, int]: ...
    def where_len(self) -> int: ...
    def nbytes(self) -> int: ...
