"""The store contract, over every medium this machine has (cuda and pinned skip without a GPU)."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest
import torch

from exo_runtime.buffers import ALIGN_BYTES, StagingPool, align_up
from exo_runtime.stores import Store, StoreFull, StoreSettings, media, store_class
from exo_runtime.stores.base import StoreInvariantError
from exo_runtime.stores.file import FileStore, spare_slots
from exo_runtime.stores.transfer import copy_path
from exo_sim.spec import TierSpec

BLOCK = 5000  # not a multiple of anything: alignment padding must be handled
SLOTS = 16


def tier(medium: str, blocks: int = SLOTS, block_bytes: int = BLOCK) -> TierSpec:
    return TierSpec(0, f"t-{medium}", medium, "fp32", "lru", blocks * block_bytes, block_bytes, 1, blocks, blocks, blocks)


def make(medium: str, path: Path, **kw: object) -> Store:
    reason = store_class(medium).unavailable()
    if reason:
        pytest.skip(f"{medium} store unavailable here: {reason}")
    settings = StoreSettings(data_dir=path, tag=f"exo-test-{os.getpid()}", **kw)  # type: ignore[arg-type]
    return store_class(medium)(tier(medium), settings)


@pytest.fixture(params=sorted(media()))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    st = make(request.param, tmp_path)
    yield st  # type: ignore[misc]
    st.close()


def rows_for(st: Store, n: int) -> torch.Tensor:
    pool = StagingPool(n * align_up(st.row_bytes) + ALIGN_BYTES, pinned=torch.cuda.is_available())
    return pool.rows(n, align_up(st.row_bytes) if st.row_align > 1 else st.row_bytes)


def test_every_medium_has_a_store() -> None:
    assert media() == ["cuda", "file", "pinned", "ram", "shm"]


def test_contract_allocate_write_read_free_verify(store: Store) -> None:
    cap = store.tier.capacity_blocks
    slots = [store.allocate() for _ in range(cap)]
    assert sorted(slots) == list(range(cap))
    if store.slots == cap:
        with pytest.raises(StoreFull):
            store.allocate()
    store.verify()

    gen = torch.Generator().manual_seed(3)
    data = rows_for(store, cap)
    data.copy_(torch.randint(0, 256, data.shape, dtype=torch.uint8, generator=gen))
    order = [3, 4, 5, 0, 15, 9, 10, 11, 2, 1, 6, 7, 8, 12, 14, 13]  # runs and jumps
    store.write(order, data)
    store.synchronize()
    back = rows_for(store, cap)
    back.zero_()
    store.read(sorted(order), back)
    store.synchronize()
    for pos, slot in enumerate(order):
        assert torch.equal(back[slot, :BLOCK], data[pos, :BLOCK]), f"slot {slot}"

    store.free(4)
    with pytest.raises(StoreInvariantError):
        store.free(4)
    store.reclaim()
    assert store.allocate() == 4
    store.verify()


def test_footprint_is_the_slab(store: Store) -> None:
    fp = store_class(store.medium).footprint(store.tier, StoreSettings(data_dir=Path(".")))
    total = fp.device_bytes + fp.host_bytes + fp.shm_bytes + fp.disk_bytes
    if store.medium == "file":
        assert total == (SLOTS + spare_slots(SLOTS, 0.05)) * align_up(BLOCK)
    else:
        assert total == SLOTS * BLOCK


def test_file_rows_are_aligned_and_padding_reported(tmp_path: Path) -> None:
    st = make("file", tmp_path)
    assert st.row_bytes == align_up(BLOCK) == 8192
    assert st.describe()["file_bytes"] == st.slots * 8192 == os.fstat(st.fd).st_size
    misaligned = torch.zeros((1, BLOCK), dtype=torch.uint8)
    with pytest.raises(ValueError, match="4096-aligned"):
        st.write([0], misaligned)
    st.close()


def test_file_reads_come_from_the_drive_not_the_page_cache(tmp_path: Path) -> None:
    proc = psutil.Process()
    try:
        proc.io_counters()
    except (psutil.Error, AttributeError, NotImplementedError):
        pytest.skip("this platform does not report per-process I/O counters")
    st = FileStore(tier("file", 16, 1 << 20), StoreSettings(data_dir=tmp_path))
    rows = rows_for(st, 16)
    rows.fill_(7)
    st.write(list(range(16)), rows)
    counted = []
    for _ in range(2):  # a page-cached file would be read from the drive once at most
        before = proc.io_counters().read_bytes
        st.read(list(range(16)), rows)
        counted.append(proc.io_counters().read_bytes - before)
    st.close()
    assert counted == [16 << 20, 16 << 20]


def test_file_does_not_reuse_a_freed_slot_before_a_commit(tmp_path: Path) -> None:
    st = make("file", tmp_path)
    taken = [st.allocate() for _ in range(st.slots)]
    st.free(taken[5])
    with pytest.raises(StoreFull):
        st.allocate()  # slot 5 still holds a block a committed manifest may name
    st.verify()
    st.reclaim()
    assert st.allocate() == taken[5]
    st.close()


def test_file_keeps_its_blocks_for_a_later_run(tmp_path: Path) -> None:
    st = make("file", tmp_path, persist=True)
    assert st.persistent and st.path == tmp_path / "t-file.slab" and st.path.exists()
    rows = rows_for(st, 3)
    rows.copy_(torch.randint(0, 256, rows.shape, dtype=torch.uint8))
    st.write([0, 1, 2], rows)
    st.close()
    again = make("file", tmp_path, resume=True, persist=True)
    back = rows_for(again, 3)
    again.read([0, 1, 2], back)
    assert torch.equal(back[:, :BLOCK], rows[:, :BLOCK])
    again.close()


def test_shm_leaves_nothing_in_dev_shm(tmp_path: Path) -> None:
    st = make("shm", tmp_path)
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"exo-test-{os.getpid()}")]
    st.close()


def test_copy_paths(tmp_path: Path) -> None:
    ram, shm, f = make("ram", tmp_path), make("shm", tmp_path), make("file", tmp_path)
    assert copy_path(ram, shm) == "source"
    assert copy_path(ram, f) == "bounce" and copy_path(f, shm) == "bounce"
    for st in (ram, shm, f):
        st.close()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("medium", ["cuda", "pinned"])
def test_gpu_media_say_why_they_are_unavailable(medium: str) -> None:
    reason = store_class(medium).unavailable()
    assert reason is not None and "GPU" in reason
