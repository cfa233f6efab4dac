"""A slab not kept for resume never outlives its run, even one killed with kill -9; a file tier's slab
fits in the tier's capacity_bytes, and the plan (exo_sim) and the store agree on its blocks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exo_runtime.run import run_runtime
from exo_runtime.stores import StoreSettings, store_class
from exo_sim.spec import FILE_ROW_BYTES, blocks_in, build_spec, row_bytes, slab_bytes, slab_slots
from tests.runtime_overrides import REPO, compose_cfg, small

RUN = "exo_runtime.cli.run"


def _open_slabs(pid: int, folder: Path) -> list[os.stat_result]:
    """``stat`` of every file process ``pid`` holds open in ``folder`` (a nameless slab included)."""
    out = []
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
            if target.startswith(f"{folder}/"):
                out.append(os.stat(fd))  # follows the link: works for an unlinked file too
        except OSError:
            continue
    return out


def _shm_maps(pid: int) -> list[str]:
    """The lines of ``/proc/<pid>/maps`` that map POSIX shared memory."""
    try:
        return [ln for ln in Path(f"/proc/{pid}/maps").read_text().splitlines() if "/dev/shm/" in ln]
    except OSError:
        return []


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to see the running process's slabs")
def test_a_killed_run_leaves_no_slab_behind(tmp_path: Path) -> None:
    out = tmp_path / "r1"
    data = out / "data"
    spec = build_spec(compose_cfg())
    nvme = spec.tier("nvme")
    want = slab_bytes("file", nvme.block_bytes, nvme.capacity_blocks, 0.05)
    shm_before = set(os.listdir("/dev/shm"))
    args = small("workload.accesses=50000000", "workload.objects=20000", "runtime.manifest_interval_s=0.02",
                 f"hydra.run.dir={out}")
    proc = subprocess.Popen([sys.executable, "-m", RUN, *args], cwd=REPO, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    seen: list[os.stat_result] = []
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"exo-run ended early: {proc.stderr.read().decode() if proc.stderr else ''}")
            seen = [st for st in _open_slabs(proc.pid, data) if st.st_size == want]
            if seen and _shm_maps(proc.pid) and (out / ".hydra").exists():
                break
            time.sleep(0.05)
        else:
            pytest.fail("the run never held its file slab and shared-memory slab open")
        # mid-run: the slabs are real (the file's rows are allocated) and already nameless
        assert seen[0].st_nlink == 0 and seen[0].st_blocks * 512 >= want
        assert all(ln.endswith("(deleted)") for ln in _shm_maps(proc.pid))
        time.sleep(0.5)  # well inside the run: blocks written, manifests committed
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    left = [p for p in out.rglob("*") if p.is_file() and not p.is_relative_to(out / ".hydra")]
    assert not [p for p in left if p.is_relative_to(data)], left  # no slab, no manifest, no temporary
    assert not [p for p in left if ".slab" in p.name or ".manifest" in p.name], left
    new_shm = set(os.listdir("/dev/shm")) - shm_before
    assert not [n for n in new_shm if n.startswith(f"exo-{proc.pid}-")]
    assert not [n for n in new_shm if n.startswith("exo-")], new_shm


def test_a_run_without_data_dir_keeps_nothing_and_one_with_it_keeps_its_slab(tmp_path: Path) -> None:
    plain = run_runtime(compose_cfg(), tmp_path / "r1")
    nvme = plain.summary["runtime"]["stores"][2]
    assert nvme["medium"] == "file" and nvme["persistent"] is False
    assert not (tmp_path / "r1" / "data").exists()
    kept = run_runtime(compose_cfg(f"runtime.data_dir={tmp_path / 'data'}"), tmp_path / "r2")
    assert kept.summary["runtime"]["stores"][2]["persistent"] is True
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["nvme.manifest", "nvme.slab"]


# ---------------------------------------------------------------------------- capacity on disk
@pytest.mark.parametrize(
    ("payload", "capacity"),
    [("rag_chunk_minilm", 4 << 20), ("rag_chunk_minilm", (4 << 20) + 12345), ("tiny_llama_kv", 24 << 20)],
)
def test_a_file_tier_holds_its_capacity_on_disk(payload: str, capacity: int, tmp_path: Path, make_cfg) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg("hardware=ci_cpu", f"payload={payload}", f"hardware.tiers.2.capacity_bytes={capacity}")
    spec = build_spec(cfg)
    t = spec.tier("nvme")
    fraction = float(cfg.runtime.file_spare_fraction)
    cls = store_class("file")
    store = cls(t, StoreSettings(data_dir=tmp_path, spare_fraction=fraction))
    try:
        st = os.fstat(store.fd)
        # the slab on disk, padding and spares included, is within the tier's capacity
        assert st.st_size == store.size_bytes == store.slots * store.row_bytes <= t.capacity_bytes
        assert st.st_blocks * 512 <= t.capacity_bytes
        assert cls.footprint(t, StoreSettings(data_dir=tmp_path, spare_fraction=fraction)).disk_bytes == st.st_size
        # the plan and the store agree by construction: the same functions size both
        assert store.row_bytes == row_bytes("file", t.block_bytes) == -(-t.block_bytes // FILE_ROW_BYTES) * FILE_ROW_BYTES
        assert store.slots == slab_slots("file", t.capacity_blocks, fraction)
        assert t.capacity_blocks == blocks_in("file", capacity, t.block_bytes, fraction)
        # every live block the plan counts has a slot; the rest are the copy-on-write spares
        taken = [store.allocate() for _ in range(t.capacity_blocks)]
        assert len(taken) == t.capacity_blocks and store.free_slots == store.slots - t.capacity_blocks >= 8
        # and it is the most that fits: one block more would not
        assert slab_bytes("file", t.block_bytes, t.capacity_blocks + 1, fraction) > t.capacity_bytes
    finally:
        store.close()
    assert not list(tmp_path.iterdir())  # a nameless slab: nothing left once closed
    assert any(n.startswith("tier nvme (file)") and f"holds {t.capacity_blocks:,} blocks" in n for n in spec.notes)


def test_ci_cpus_8_gib_file_tier_counts_its_padding(make_cfg) -> None:  # type: ignore[no-untyped-def]
    # 2,560-byte blocks in 4,096-byte rows: 8 GiB is 2,097,152 rows, 99,865 of them spares
    spec = build_spec(make_cfg("hardware=ci_cpu", "payload=rag_chunk_minilm"))
    nvme = spec.tier("nvme")
    assert (nvme.block_bytes, nvme.capacity_bytes) == (2560, 8 * 2**30)
    assert nvme.capacity_blocks == 1_997_287 < 8 * 2**30 // 2560
    assert slab_slots("file", nvme.capacity_blocks, 0.05) == 8 * 2**30 // 4096
    # memory tiers pack their blocks: no padding, no spares
    assert spec.tier("ram").capacity_blocks == 2 * 2**30 // spec.tier("ram").block_bytes


def test_a_file_tier_given_in_blocks_counts_its_slab_as_its_bytes(make_cfg) -> None:  # type: ignore[no-untyped-def]
    spec = build_spec(make_cfg("hardware=ci_cpu", "payload=rag_chunk_minilm", "hardware.tiers.2.capacity_bytes=null",
                               "hardware.tiers.2.capacity_blocks=200"))
    nvme = spec.tier("nvme")
    assert nvme.capacity_blocks == 200
    assert nvme.capacity_bytes == (200 + 10) * 4096  # 200 rows + max(8, ceil(200 x 0.05)) spares


def test_a_file_tier_too_small_for_one_block_and_its_spares_is_refused(make_cfg) -> None:  # type: ignore[no-untyped-def]
    from exo_sim.errors import ConfigError

    with pytest.raises(ConfigError, match=r"hardware.tiers\[2\].capacity_bytes.*copy-on-write spare rows"):
        build_spec(make_cfg("hardware=ci_cpu", "payload=rag_chunk_minilm", "hardware.tiers.2.capacity_bytes=20000"))
