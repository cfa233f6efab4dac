"""Allocate what a checked run holds until it ends, and release it.

Called after :mod:`exo_runtime.fitcheck` has refused whatever does not fit: each usable tier's codec
and store (its slab), the staging pool, the hierarchy, the durable tiers' manifests and the
:class:`~exo_runtime.executor.Executor` that moves blocks between the stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from exo_runtime.buffers import StagingPool
from exo_runtime.codecs import Codec, make_codec
from exo_runtime.datadir import DataDir
from exo_runtime.executor import BirthSource, Executor
from exo_runtime.fitcheck import BufferSizes
from exo_runtime.manifest import Manifest
from exo_runtime.settings import RuntimeSettings
from exo_runtime.stores import Store, store_class
from exo_sim.hierarchy import Hierarchy
from exo_sim.spec import Spec


@dataclass(frozen=True)
class Allocation:
    """What :func:`allocate` made; ``stores`` and ``manifests`` are by tier index (None: unusable tier)."""

    stores: list[Store | None]
    staging: StagingPool
    hierarchy: Hierarchy
    manifests: dict[int, Manifest]
    executor: Executor


def tier_codecs(spec: Spec, mix: Any) -> list[Codec | None]:
    """Each tier's codec (one instance per codec name; None for an unusable tier)."""
    by_name: dict[str, Codec] = {}
    codecs: list[Codec | None] = []
    for t in spec.tiers:
        if not t.usable:
            codecs.append(None)
            continue
        if t.codec not in by_name:
            by_name[t.codec] = make_codec(t.codec, spec.content.elements, mix)
        codecs.append(by_name[t.codec])
    return codecs


def allocate(
    spec: Spec,
    settings: RuntimeSettings,
    data: DataDir,
    sizes: BufferSizes,
    mix: Any,
    births: BirthSource | None,
    stores: list[Store | None],
) -> Allocation:
    """Allocate the run's codecs, stores, staging pool, hierarchy, manifests and executor.

    Args:
        spec: the run's spec.
        settings: the run's resolved settings.
        data: the checked data directory (:func:`~exo_runtime.datadir.open_data_dir`).
        sizes: the buffer sizes the fit check accepted (:func:`~exo_runtime.fitcheck.check_run_fits`).
        mix: ``cfg.codec``, the codec mix (group sizes and scale bytes of the integer codecs).
        births: where a block's data comes from when the workload first asks for it.
        stores: one None per tier, filled as each store is created, so that the caller can close
            (:func:`close_stores`) whatever was allocated when a later step fails or is interrupted.

    Raises:
        ConfigError: a codec cannot store the mix's parameters.
    """
    codecs = tier_codecs(spec, mix)
    for t in spec.tiers:
        if t.usable:
            stores[t.index] = store_class(t.medium)(t, data.store_settings)
    staging = StagingPool(sizes.staging_bytes, torch.cuda.is_available())
    h = Hierarchy(spec, record_moves=True)
    manifests = data.open_manifests(stores)
    executor = Executor(
        h,
        stores,
        codecs,
        births,
        staging,
        settings.codec_scratch_bytes,
        settings.integrity,
        manifests,
        settings.manifest_interval_s,
    )
    return Allocation(stores, staging, h, manifests, executor)


def close_stores(stores: list[Store | None]) -> None:
    """Close every store created (its slab goes, unless it is kept for a later resume)."""
    for st in stores:
        if st is not None:
            st.close()


__all__ = ["Allocation", "allocate", "close_stores", "tier_codecs"]
