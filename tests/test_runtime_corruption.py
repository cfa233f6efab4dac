"""A corrupted block in any medium (shm, ram, file) is detected and never served; a torn manifest is
reported in one sentence on resume, never with a traceback."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest
import torch

from exo_runtime.buffers import ALIGN_BYTES, StagingPool, align_up
from exo_runtime.codecs import make_codec
from exo_runtime.errors import DataDirError
from exo_runtime.executor import Executor
from exo_runtime.manifest import ENTRY, MAGIC, Manifest, load_manifest, manifest_path
from exo_runtime.payload_data import BlockFactory
from exo_runtime.run import run_runtime
from exo_runtime.stores import Store, StoreSettings, store_class
from exo_sim.hierarchy import Hierarchy
from exo_sim.spec import build_spec
from tests.runtime_overrides import cli, compose_cfg, one_error_line, small, tiers

RUN = "exo_runtime.cli.run"


class Rig:
    """An executor over real stores of any media (a manifest for each durable one), driven by hand."""

    def __init__(self, tmp_path: Path, *overrides: str) -> None:
        cfg = compose_cfg(*overrides)
        spec = build_spec(cfg)
        settings = StoreSettings(data_dir=tmp_path, tag=f"exo-test-corrupt-{os.getpid()}")
        self.stores: list[Store] = [store_class(t.medium)(t, settings) for t in spec.tiers]
        manifests = {
            k: Manifest(manifest_path(tmp_path, st.name), {"test": True}, st)
            for k, st in enumerate(self.stores)
            if st.durable
        }
        codecs = [make_codec(t.codec, spec.content.elements, cfg.codec) for t in spec.tiers]
        self.h = Hierarchy(spec, record_moves=True)
        factory = BlockFactory(cfg.payload, spec.block_tokens, 0)
        self.ex = Executor(self.h, self.stores, codecs, factory, StagingPool(1 << 22, False), 1 << 22, "checksum",
                           manifests, 1.0)  # type: ignore[arg-type]

    def access(self, b: int) -> None:
        self.h.access(b)
        self.ex.apply(self.h.moves)
        self.h.moves.clear()

    def corrupt(self, k: int, block: int) -> None:
        """Flip bytes of ``block``'s copy in tier ``k`` through the store itself (any medium)."""
        st = self.stores[k]
        slot = self.ex.copies[block][k].slot
        stride = align_up(st.row_bytes) if st.row_align > 1 else st.row_bytes
        rows = StagingPool(stride + 2 * ALIGN_BYTES, False).rows(1, stride)
        st.read([slot], rows)
        rows[0, 3] ^= 0xFF
        st.write([slot], rows)
        st.sync()

    def served_intact(self, block: int) -> bool:
        """Whether the top tier's copy of ``block`` decodes to its real data (within the codec's bound)."""
        top = self.ex.copies[block][0]
        st = self.stores[0]
        stride = align_up(st.row_bytes) if st.row_align > 1 else st.row_bytes
        rows = StagingPool(stride + 2 * ALIGN_BYTES, False).rows(1, stride)
        st.read([top.slot], rows)
        got = torch.empty((1, self.ex.elements))
        self.ex.codecs[0].decode(rows[:, : st.slot_bytes], got)  # type: ignore[union-attr]
        want = torch.empty((1, self.ex.elements))
        self.ex.factory.birth([block], want, None)  # type: ignore[union-attr]
        return float((got - want).abs().max()) <= top.bound

    def close(self) -> None:
        self.ex.verify()
        self.h.verify()
        for st in self.stores:
            st.close()


@pytest.mark.parametrize("medium", ["shm", "ram", "file"])
def test_a_corrupted_block_in_any_medium_is_detected_when_promoted_and_never_served(
    medium: str, tmp_path: Path
) -> None:
    rig = Rig(tmp_path, "hardware.tiers.0.medium=ram", f"hardware.tiers.1.medium={medium}",
              "hardware.tiers.2.medium=ram", *tiers(4, 8, 16))
    for b in range(10):
        rig.access(b)
    victim = next(b for b, held in rig.ex.copies.items() if 1 in held)
    rig.corrupt(1, victim)
    rig.access(victim)  # promoted: read from the middle tier, found corrupted, recomputed
    name = rig.stores[1].name
    assert [(c.block, c.tier) for c in rig.ex.corruptions] == [(victim, name)]
    assert rig.served_intact(victim)
    rig.close()


def test_a_corrupted_block_in_the_shm_top_tier_is_detected_when_it_leaves_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path, *tiers(4, 8, 16))  # ci_cpu: shm / ram / file
    assert [st.medium for st in rig.stores] == ["shm", "ram", "file"]
    for b in range(3):
        rig.access(b)
    victim = next(b for b, held in rig.ex.copies.items() if 0 in held)
    rig.corrupt(0, victim)
    for b in range(100, 140):  # push it down: the demotion reads it from shared memory
        rig.access(b)
        if 0 not in rig.ex.copies.get(victim, {}):
            break
    assert [(c.block, c.tier) for c in rig.ex.corruptions] == [(victim, "shared")]
    rig.access(victim)  # back to the top: what arrives is the block's real data, not the damaged bytes
    assert rig.served_intact(victim)
    rig.close()


def test_a_corrupted_block_in_the_file_tier_mid_run_is_detected(tmp_path: Path) -> None:
    rig = Rig(tmp_path, *tiers(2, 2, 64))  # small upper tiers: blocks go down to the file and come back
    for b in range(12):
        rig.access(b)
    victim = next(b for b, held in rig.ex.copies.items() if 2 in held)
    rig.corrupt(2, victim)
    rig.access(victim)
    assert [(c.block, c.tier) for c in rig.ex.corruptions] == [(victim, "nvme")]
    assert rig.served_intact(victim)
    rig.close()


# ---------------------------------------------------------------------------- torn manifests
def _persisted(tmp_path: Path) -> tuple[Path, bytes, int]:
    """A data_dir a run persisted; its manifest's bytes and where its entries start."""
    data = tmp_path / "data"
    run_runtime(compose_cfg(f"runtime.data_dir={data}"), tmp_path / "r1")
    raw = (data / "nvme.manifest").read_bytes()
    (hlen,) = struct.unpack_from("<Q", raw, len(MAGIC))
    start = len(MAGIC) + 8 + hlen + 8
    assert (len(raw) - start - 4) // ENTRY.itemsize >= 5
    return data, raw, start


def test_a_manifest_torn_mid_entry_is_reported_on_resume(tmp_path: Path) -> None:
    data, raw, start = _persisted(tmp_path)
    path = data / "nvme.manifest"
    path.write_bytes(raw[: start + 3 * ENTRY.itemsize + ENTRY.itemsize // 2])  # the 4th entry half written
    proc = cli(RUN, *small(f"runtime.data_dir={data}", "runtime.resume=true", f"hydra.run.dir={tmp_path / 'r2'}"))
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    assert str(path) in line and "fails its checksum" in line and "Traceback" not in proc.stderr
    assert not (tmp_path / "r2" / "summary.json").exists()


def test_a_torn_manifest_whose_checksum_passes_is_still_refused(tmp_path: Path) -> None:
    """A tear that keeps a valid checksum (a writer that checksummed what it had) is caught by the sizes."""
    data, raw, start = _persisted(tmp_path)
    path = data / "nvme.manifest"
    body = raw[: start + 2 * ENTRY.itemsize + 7]
    path.write_bytes(body + struct.pack("<I", zlib.crc32(body)))
    with pytest.raises(DataDirError, match="is torn or damaged"):
        load_manifest(path)
    proc = cli(RUN, *small(f"runtime.data_dir={data}", "runtime.resume=true", f"hydra.run.dir={tmp_path / 'r2'}"))
    assert proc.returncode == 2, proc.stderr
    assert "is torn or damaged" in one_error_line(proc)


@pytest.mark.parametrize("keep", [0, 5, len(MAGIC) + 3])
def test_a_manifest_torn_in_its_header_is_reported(keep: int, tmp_path: Path) -> None:
    data, raw, _ = _persisted(tmp_path)
    (data / "nvme.manifest").write_bytes(raw[:keep])
    with pytest.raises(DataDirError, match="is not an exo manifest"):
        load_manifest(data / "nvme.manifest")
