"""The data directory: where the file tiers' slabs and manifests live, and what an earlier run left there.

Before anything is allocated, :func:`open_data_dir` creates the folder, proves it writable and checks
each durable tier's manifest: one written for another config (its layout differs) is refused, and so is
an earlier run's unless ``runtime.resume`` is set. Once the stores exist, :func:`recover` reads back
every block a manifest names and checks it bit for bit; the intact ones are placed in their tier (up
to its high watermark), the others are reported lost, never served.

Without ``runtime.data_dir`` the file tiers live in ``<out>/data``, nameless, and the folder goes at the
end of the run (:meth:`DataDir.clean_up`): nobody could resume from it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from exo_runtime.buffers import ALIGN_BYTES, StagingPool
from exo_runtime.errors import DataDirError
from exo_runtime.executor import Corruption, Executor, recovered_copy
from exo_runtime.integrity import row_crcs
from exo_runtime.manifest import Manifest, load_manifest, manifest_path
from exo_runtime.settings import RuntimeSettings
from exo_runtime.stores import Store, StoreSettings, store_class
from exo_sim.hierarchy import Hierarchy
from exo_sim.results import config_hash
from exo_sim.spec import Spec, TierSpec


def prepare_dir(path: Path, key: str) -> None:
    """Create ``path`` if needed and prove it writable; :class:`DataDirError` naming ``key`` if not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".exo-probe-"):
            pass
    except OSError as err:
        reason = err.strerror or str(err)
        raise DataDirError(f"{key} {path} is not a writable directory ({reason})") from None


def tier_layout(
    settings: RuntimeSettings, spec: Spec, tier: TierSpec, slots: int, row_bytes: int
) -> dict[str, Any]:
    """What a durable tier's file holds, as data: a manifest is reusable only under an equal layout."""
    return {
        "payload": dict(settings.payload),
        "block_tokens": spec.block_tokens,
        "tier": tier.name,
        "medium": tier.medium,
        "codec": tier.codec,
        "codec_params": dict(settings.codec_params),
        "block_bytes": tier.block_bytes,
        "capacity_blocks": tier.capacity_blocks,
        "slots": slots,
        "row_bytes": row_bytes,
        "seed": settings.seed,
    }


@dataclass(frozen=True)
class DataDir:
    """The checked data directory of one run (see the module docstring).

    Attributes:
        path: the folder (``runtime.data_dir``, or ``<out>/data``).
        durable: the usable tiers whose medium keeps a file there.
        disk: where the run's files go (``path`` when a tier is durable, else the output folder): the
            fit check counts its free space.
        store_settings: what every store is created with.
        layouts: each durable tier's layout (:func:`tier_layout`), by tier index.
        found: each durable tier's manifest entries to recover (``runtime.resume``), by tier index.
        reusable_disk_bytes: disk the slab files to resume on already hold.
        temporary: the folder is the run's own and goes at its end (no ``runtime.data_dir``).
        notes: what the checks found worth saying (a manifest to resume from that does not exist).
    """

    path: Path
    durable: list[TierSpec]
    disk: Path
    store_settings: StoreSettings
    layouts: dict[int, dict[str, Any]]
    found: dict[int, np.ndarray]
    reusable_disk_bytes: int
    temporary: bool
    notes: list[str]

    def open_manifests(self, stores: list[Store | None]) -> dict[int, Manifest]:
        """Each durable tier's manifest, by tier index, after removing temporaries a killed commit left."""
        for stale in self.path.glob("*.manifest.tmp") if self.durable else []:
            stale.unlink()
        manifests = {}
        for t in self.durable:
            st = stores[t.index]
            assert st is not None
            header = {
                "layout_hash": config_hash(self.layouts[t.index]),
                "layout": self.layouts[t.index],
                "tier": t.name,
                "slots": st.slots,
                "row_bytes": st.row_bytes,
            }
            manifests[t.index] = Manifest(manifest_path(self.path, t.name), header, st)
        return manifests

    def clean_up(self) -> None:
        """Remove the folder if it is the run's own (:attr:`temporary`); keep it otherwise."""
        if self.temporary:
            shutil.rmtree(self.path, ignore_errors=True)


def open_data_dir(spec: Spec, settings: RuntimeSettings, out: Path) -> DataDir:
    """Prepare the data directory and check the manifests in it, before anything is allocated.

    Raises:
        DataDirError: the folder is not writable; it holds an earlier run's blocks and
            ``runtime.resume`` is not set; or a manifest was written for another config.
    """
    path = settings.data_dir if settings.data_dir is not None else out / "data"
    durable = [t for t in spec.tiers if t.usable and store_class(t.medium).durable]
    if durable:
        prepare_dir(path, "runtime.data_dir")
    store_settings = StoreSettings(
        data_dir=path,
        prefault=settings.prefault,
        resume=settings.resume,
        persist=settings.persist,  # otherwise the slabs are nameless: nothing outlives the run, even killed
        spare_fraction=settings.file_spare_fraction,
        tag=f"exo-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        io_threads=settings.file_io_threads,
    )
    notes: list[str] = []
    layouts: dict[int, dict[str, Any]] = {}
    found: dict[int, np.ndarray] = {}
    reusable_disk = 0
    for t in durable:
        cls = store_class(t.medium)
        layout = tier_layout(
            settings, spec, t, cls.physical_slots(t, store_settings), cls.row_bytes_for(t.block_bytes)
        )
        layouts[t.index] = layout
        mpath = manifest_path(path, t.name)
        if not mpath.exists():
            if settings.resume:
                notes.append(f"runtime.resume=true but {mpath} does not exist: tier {t.name} starts empty")
            continue
        header, entries = load_manifest(mpath)
        if not settings.resume:
            raise DataDirError(
                f"runtime.data_dir {path} already holds {len(entries)} blocks of tier {t.name} "
                f"persisted by an earlier run ({mpath}); pass runtime.resume=true to reuse them or "
                "choose another runtime.data_dir"
            )
        if header.get("layout_hash") != config_hash(layout):
            raise DataDirError(
                f"manifest {mpath} was written for another config (its payload, block size, codec, "
                f"tier capacity, spare slots or seed differ: layout {header.get('layout_hash')}, this "
                f"config's {config_hash(layout)}); use another runtime.data_dir"
            )
        found[t.index] = entries
        slab = path / f"{t.name}.slab"
        if slab.exists():
            reusable_disk += min(slab.stat().st_blocks * 512, slab.stat().st_size)
    return DataDir(
        path=path,
        durable=durable,
        disk=path if durable else out,
        store_settings=store_settings,
        layouts=layouts,
        found=found,
        reusable_disk_bytes=reusable_disk,
        temporary=bool(durable) and not settings.persist,
        notes=notes,
    )


# ---------------------------------------------------------------------------- recovery
@dataclass(frozen=True)
class Recovery:
    """What :func:`recover` found and placed.

    Attributes:
        recovered: per durable tier's name, its ``manifest_blocks``, ``resumed_blocks``, ``lost_blocks``
            and ``over_watermark_blocks``.
        lost: every block a manifest named that could not be used, with why.
        notes: what is worth saying (recovered blocks dropped above a high watermark).
        preloaded_blocks: blocks in each tier (by index) before the first request.
    """

    recovered: dict[str, dict[str, int]]
    lost: list[Corruption]
    notes: list[str]
    preloaded_blocks: list[int]


@dataclass
class _TierRecovery:
    resumed: int = 0
    over_watermark: int = 0
    lost: list[Corruption] = field(default_factory=list)


def recover(
    data: DataDir,
    stores: list[Store | None],
    staging: StagingPool,
    h: Hierarchy,
    executor: Executor,
    manifests: dict[int, Manifest],
) -> Recovery:
    """Recover every block the manifests found by :func:`open_data_dir` name, tier by tier."""
    recovered: dict[str, dict[str, int]] = {}
    lost: list[Corruption] = []
    notes: list[str] = []
    for k, entries in data.found.items():
        st = stores[k]
        assert st is not None
        rec = _recover_tier(k, st, entries, staging, h, executor, manifests[k], executor._stride(k))
        lost.extend(rec.lost)
        recovered[st.name] = {
            "manifest_blocks": len(entries),
            "resumed_blocks": rec.resumed,
            "lost_blocks": len(rec.lost),
            "over_watermark_blocks": rec.over_watermark,
        }
        if rec.over_watermark:
            notes.append(
                f"{rec.over_watermark} blocks recovered in tier {st.name} did not fit under its high "
                "watermark and were dropped"
            )
    return Recovery(recovered, lost, notes, list(h.used))


def _recover_tier(
    k: int,
    store: Store,
    entries: np.ndarray,
    staging: StagingPool,
    h: Hierarchy,
    executor: Executor,
    manifest: Manifest,
    stride: int,
) -> _TierRecovery:
    """Check every block a manifest names (bit for bit) and place the intact ones in tier ``k``."""
    out = _TierRecovery()
    ok: list[Any] = []
    seen_slots: set[int] = set()
    order = np.argsort(entries["slot"], kind="stable")
    batch = max(1, staging.nbytes // (stride + ALIGN_BYTES))
    valid = [entries[i] for i in order if 0 <= int(entries[i]["slot"]) < store.slots]
    for e in (entries[i] for i in order if not 0 <= int(entries[i]["slot"]) < store.slots):
        out.lost.append(Corruption(int(e["block"]), store.name, int(e["slot"]), "slot outside the slab"))
    for a in range(0, len(valid), batch):
        part = valid[a : a + batch]
        rows = staging.rows(len(part), stride)
        store.read([int(e["slot"]) for e in part], rows)
        crcs = row_crcs(rows, store.slot_bytes)
        staging.reset()
        for e, c in zip(part, crcs, strict=True):
            slot = int(e["slot"])
            if c != int(e["crc"]):
                out.lost.append(Corruption(int(e["block"]), store.name, slot, "torn or corrupted on disk"))
            elif slot in seen_slots:
                out.lost.append(Corruption(int(e["block"]), store.name, slot, "slot named twice"))
            else:
                seen_slots.add(slot)
                ok.append(e)
    ok.sort(key=lambda e: int(e["seq"]))
    left = set(h.preload(k, [int(e["block"]) for e in ok]))
    placed = []
    for e in ok:
        block, copy, birth = recovered_copy(e)
        if block in left:
            out.over_watermark += 1
            continue
        placed.append(copy.slot)
        executor.adopt(k, block, copy, birth)
        manifest.restore(block, (copy.slot, copy.crc, birth, int(e["seq"]), copy.bound, copy.lossless))
        manifest.seq = max(manifest.seq, int(e["seq"]))
    store.claim(placed)
    out.resumed = len(placed)
    manifest.commit()
    return out


__all__ = ["DataDir", "Recovery", "open_data_dir", "prepare_dir", "recover", "tier_layout"]
