"""Real filesystems for the runtime's disk faults: a loop-mounted ext4 image that fills up mid-run (a real
ENOSPC, not a file-size limit) and one mounted read-only (refused even for root, who writes through
directory permissions). Both need root and a working ``mount -o loop``; they skip, saying why, without."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from exo_runtime.errors import DataDirError
from exo_runtime.manifest import load_manifest
from exo_runtime.run import run_runtime
from tests.runtime_overrides import REPO, compose_cfg, small

RUN = "exo_runtime.cli.run"


@contextmanager
def ext4_image(tmp_path: Path, size_bytes: int, read_only: bool = False) -> Iterator[Path]:
    """A fresh ext4 filesystem of ``size_bytes`` (no root reserve) loop-mounted; unmounted in the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a loop ext4 image needs root")
    if not (shutil.which("mkfs.ext4") and shutil.which("mount") and shutil.which("umount")):
        pytest.skip("mkfs.ext4, mount or umount is missing here")
    image, mnt = tmp_path / "disk.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, size_bytes)  # not sparse: the image's own writes cannot fail
    made = subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-b", "4096", str(image)], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"mkfs.ext4 failed here: {made.stderr.strip()}")
    opts = "loop,ro" if read_only else "loop"
    mounted = subprocess.run(["mount", "-o", opts, str(image), str(mnt)], capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"mount -o loop does not work here: {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)  # still busy: detach lazily


def fill(folder: Path) -> Path:
    """Write (append) to a file in ``folder`` until the filesystem has no byte left (a real ENOSPC)."""
    path = folder / "filler"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for chunk in (1 << 20, 4096, 512):
            buf = b"\0" * chunk
            while True:
                try:
                    os.write(fd, buf)
                except OSError as err:
                    assert err.errno == errno.ENOSPC, err
                    break
        try:
            os.fsync(fd)
        except OSError as err:
            assert err.errno == errno.ENOSPC, err
    finally:
        os.close(fd)
    return path


def test_a_disk_that_fills_up_mid_run_stops_it_cleanly_and_loses_no_block(tmp_path: Path) -> None:
    with ext4_image(tmp_path, 64 << 20) as mnt:
        data = mnt / "data"
        out = tmp_path / "r1"
        args = small("workload.accesses=50000000", "workload.objects=20000", f"runtime.data_dir={data}",
                     "runtime.manifest_interval_s=0.02", f"hydra.run.dir={out}")
        env = dict(os.environ, HYDRA_FULL_ERROR="0")
        proc = subprocess.Popen([sys.executable, "-m", RUN, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        manifest = data / "nvme.manifest"
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    pytest.fail(f"exo-run ended before the disk filled up: {proc.communicate()[1]}")
                if manifest.exists():
                    header, entries = load_manifest(manifest)
                    if header["commit"] >= 3 and len(entries) >= 100:
                        break
                time.sleep(0.05)
            else:
                pytest.fail("no manifest with 100 blocks after 90 s")
            # another process takes the rest of the disk while the run goes on; again whenever the run
            # frees some (a commit that replaces a manifest of the same size needs no new space)
            deadline = time.monotonic() + 90
            while proc.poll() is None and time.monotonic() < deadline:
                filler = fill(mnt)
                time.sleep(0.02)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

        # one sentence, exit status 3, results written and marked incomplete
        assert proc.returncode == 3, err
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert "No space left on device" in lines[0] and "tier nvme" in lines[0], lines[0]
        summary = json.loads((out / "summary.json").read_text())
        assert summary["complete"] is False and summary["fault"] == lines[0].removeprefix("error: ")

        # a consistent state: the manifest on disk is whole (no temporary left), and every block it
        # names is intact: once space is back, a resumed run finds them all
        assert not list(data.glob("*.tmp"))
        assert (data / "nvme.slab").exists()
        _, entries = load_manifest(manifest)
        assert len(entries) >= 100
        filler.unlink()
        resumed = run_runtime(compose_cfg(f"runtime.data_dir={data}", "runtime.resume=true"), tmp_path / "r2")
        recovered = resumed.summary["runtime"]["persistence"]["recovered"]["nvme"]
        assert recovered["manifest_blocks"] == len(entries)
        assert recovered["resumed_blocks"] == len(entries) and recovered["lost_blocks"] == 0
        assert resumed.fault is None


def test_a_read_only_data_dir_is_refused_even_for_root(tmp_path: Path) -> None:
    with ext4_image(tmp_path, 16 << 20, read_only=True) as mnt:
        with pytest.raises(DataDirError, match=r"is not a writable directory \(Read-only file system\)"):
            run_runtime(compose_cfg(f"runtime.data_dir={mnt / 'data'}"), tmp_path / "out")
        assert not (tmp_path / "out" / "summary.json").exists()


def test_a_manifest_commit_on_a_full_disk_keeps_the_last_manifest(tmp_path: Path) -> None:
    from exo_runtime.errors import DiskFullError
    from exo_runtime.manifest import Manifest, ManifestFull
    from exo_runtime.stores import StoreSettings, store_class
    from exo_sim.spec import TierSpec

    with ext4_image(tmp_path, 16 << 20) as mnt:
        tier = TierSpec(0, "nvme", "file", "fp32", "lru", 64 * 4096, 4096, 1, 64, 64, 64)
        store = store_class("file")(tier, StoreSettings(data_dir=mnt, persist=True, io_threads=1))
        man = Manifest(mnt / "nvme.manifest", {"test": True}, store)
        try:
            for b in range(10):
                man.put(b, store.allocate(), 0, 0, 0.0, True)
            man.commit()
            store.free(3)  # freed: reusable only after a manifest without its block is durable
            man.remove(3)
            for b in range(10, 60):
                man.put(b, store.allocate(), 0, 0, 0.0, True)
            filler = fill(mnt)
            free_before = store.free_slots
            with pytest.raises(ManifestFull) as caught:
                man.commit()
            err = caught.value
            assert isinstance(err, DiskFullError) and isinstance(err, OSError) and err.errno == errno.ENOSPC
            assert str(err).startswith("committing the manifest of tier nvme") and "No space left" in str(err)
            assert str(err).count(". ") == 0  # one sentence
            assert not list(mnt.glob("*.tmp"))  # its temporary file is gone, its space given back
            _, entries = load_manifest(mnt / "nvme.manifest")
            assert sorted(entries["block"].tolist()) == list(range(10))  # the last committed manifest
            assert store.free_slots == free_before and store.pending_slots == 1  # slot 3 not reused yet
            filler.unlink()
            man.commit()
            _, entries = load_manifest(mnt / "nvme.manifest")
            assert len(entries) == 59 and store.pending_slots == 0
        finally:
            store.close()
