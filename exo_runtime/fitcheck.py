"""What a run needs of this machine, refused in one sentence before anything is allocated.

Two checks: every tier's medium exists here (:func:`check_media`: a ``cuda`` or ``pinned`` tier without
a GPU is never emulated), and everything the run will allocate fits the room the machine has now
(:func:`check_run_fits`): each tier's slab, the staging pool and bounce buffers its batches move
blocks through (:class:`BufferSizes`), and the codecs' scratch. :mod:`exo_runtime.fit` measures the
room and compares; this module says what the run's parts are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from exo_runtime.buffers import ALIGN_BYTES, align_up
from exo_runtime.datadir import DataDir
from exo_runtime.errors import MachineError
from exo_runtime.executor import STREAM_BYTES
from exo_runtime.fit import check_fit, machine_room
from exo_runtime.settings import RuntimeSettings
from exo_runtime.stores import Footprint, store_class
from exo_sim.errors import ConfigError
from exo_sim.spec import Locator, Spec

NO_GPU_HINT = "run with hardware=ci_cpu or another profile without cuda and pinned tiers"

DEFAULT_STAGING_BYTES = 64 * 2**20
"""The staging pool's least size when ``runtime.staging_bytes`` is null (four widest rows, if more)."""


def check_media(spec: Spec) -> None:
    """Refuse a tier whose medium this machine lacks (never emulated: host memory is not VRAM)."""
    for t in spec.tiers:
        if not t.usable:
            continue
        try:
            cls = store_class(t.medium)
        except KeyError as err:
            raise ConfigError(f"hardware.tiers[{t.index}].medium", str(err.args[0])) from None
        reason = cls.unavailable()
        if reason:
            raise MachineError(
                f"hardware {spec.hardware} has a {t.medium} tier ({t.name}) but {reason}; {NO_GPU_HINT}"
            )


def worst_moves_per_access(spec: Spec) -> int:
    """A generous bound on the moves one access can cause (admission, victims, cascades, persist)."""
    n_out = [max(1, t.high_blocks - max(t.low_blocks, 1) + 1) for t in spec.tiers if t.usable]
    cascade = 1
    total = 1
    for k in n_out:
        cascade = cascade * k + 1
        total += cascade
    return 2 * total if spec.mode == "write_through" else total


@dataclass(frozen=True)
class BufferSizes:
    """The host buffers a run's batches stage blocks in, sized from its tiers' rows, in bytes.

    Attributes:
        staging_bytes: the staging pool (``runtime.staging_bytes``, or sized from the blocks when null).
        reserve_bytes: what the pool keeps back for alignment padding.
        widest_row_bytes: the widest row a move stages (aligned when a tier is durable).
        largest_block_row_bytes: the largest row of any tier, unaligned (said in the too-small message).
        per_move_bytes: what one staged move takes of the pool, the medium's row alignment included.
        worst_moves: :func:`worst_moves_per_access`.
    """

    staging_bytes: int
    reserve_bytes: int
    widest_row_bytes: int
    largest_block_row_bytes: int
    per_move_bytes: int
    worst_moves: int

    @property
    def least_staging_bytes(self) -> int:
        """The smallest pool a batch can use: one staged row per move, two moves at the very least."""
        return 2 * self.widest_row_bytes + self.reserve_bytes

    @property
    def bounce_bytes(self) -> int:
        """The two bounce rows a streamed copy alternates between."""
        return 2 * align_up(max(STREAM_BYTES, self.widest_row_bytes))

    @property
    def batch_move_limit(self) -> int:
        """Moves a batch may hold before the next access starts a new one, as the request loop flushes.

        The pool holds ``(staging - reserve) // per_move`` moves and one access may add up to
        :attr:`worst_moves`, so the loop applies the batch before an access whenever it holds more
        than the difference (which may be 0 or less: then every access that follows a move starts a
        new batch).
        """
        return max(1, (self.staging_bytes - self.reserve_bytes) // self.per_move_bytes) - self.worst_moves


def buffer_sizes(spec: Spec, staging_bytes: int | None) -> BufferSizes:
    """:class:`BufferSizes` for ``spec``'s usable tiers; ``staging_bytes`` None sizes the pool from them."""
    usable = [t for t in spec.tiers if t.usable]
    classes = [store_class(t.medium) for t in usable]
    durable = any(c.durable for c in classes)
    strides = [c.row_bytes_for(t.block_bytes) for c, t in zip(classes, usable, strict=True)]
    widest = max(align_up(s) if durable else s for s in strides)
    reserve = 2 * ALIGN_BYTES * (len(spec.tiers) + 1) ** 2
    return BufferSizes(
        staging_bytes=max(DEFAULT_STAGING_BYTES, 4 * widest + reserve) if staging_bytes is None else staging_bytes,
        reserve_bytes=reserve,
        widest_row_bytes=widest,
        largest_block_row_bytes=max(strides),
        per_move_bytes=max(
            align_up(s, c.row_align) if c.row_align > 1 else s for c, s in zip(classes, strides, strict=True)
        ),
        worst_moves=worst_moves_per_access(spec),
    )


def check_run_fits(spec: Spec, settings: RuntimeSettings, data: DataDir, locate: Locator | None = None) -> BufferSizes:
    """Refuse a run whose slabs, buffers and scratch the machine cannot hold now; its buffer sizes if it fits.

    Raises:
        ConfigError: ``runtime.staging_bytes`` is too small for one batch (naming where it was set).
        MachineError: the machine lacks the room (:func:`exo_runtime.fit.check_fit`).
    """
    sizes = buffer_sizes(spec, settings.staging_bytes)
    if settings.staging_bytes is not None and settings.staging_bytes < sizes.least_staging_bytes:
        raise ConfigError(
            "runtime.staging_bytes",
            f"is {settings.staging_bytes}, too small for blocks of up to {sizes.largest_block_row_bytes} bytes: "
            f"a batch needs at least {sizes.least_staging_bytes} (or leave it null to size it from the blocks)",
            locate("runtime.staging_bytes") if locate else None,
        )
    pinned = torch.cuda.is_available()
    scratch = max(settings.codec_scratch_bytes, 4 * spec.content.elements)
    scratch_total = scratch * (2 if settings.integrity == "full" else 1)
    host_buffers = sizes.staging_bytes + sizes.bounce_bytes
    usable = [t for t in spec.tiers if t.usable]
    parts = [(f"tier {t.name}", store_class(t.medium).footprint(t, data.store_settings)) for t in usable]
    parts.append(
        ("staging and bounce buffers", Footprint(host_bytes=host_buffers, locked_bytes=host_buffers if pinned else 0))
    )
    parts.append(("codec scratch", Footprint(host_bytes=scratch_total)))
    check_fit(spec.hardware, parts, machine_room(data.disk), data.reusable_disk_bytes)
    return sizes


__all__ = [
    "NO_GPU_HINT",
    "BufferSizes",
    "buffer_sizes",
    "check_media",
    "check_run_fits",
    "worst_moves_per_access",
]
