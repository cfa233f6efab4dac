"""The file tier's manifest: which block each slot of its slab file holds, committed atomically.

A commit makes the slab's writes durable (``fdatasync``), writes the whole manifest to a temporary
file, calls ``fsync`` on it, renames it over ``<tier>.manifest``, calls ``fsync`` on the directory — so at any
instant the manifest on disk is a complete, earlier or current one, whatever kills the process. Only
then are the slots freed since the previous commit handed out again (the store's copy-on-write
reuse), so every block a manifest on disk names is intact in its slot.

A commit that fails for lack of space (ENOSPC, EFBIG, EDQUOT) removes its temporary file and raises
:class:`ManifestFull`: the manifest on disk stays the previous one, whose every block is still intact
(no slot it names was reused), and the run stops with a one-sentence fault.

A store whose slab does not outlive the process (``Store.persistent`` false: ``exo-run`` without
``runtime.data_dir``) leaves no manifest either: its commits write the same bytes to a nameless file
(``O_TMPFILE``) and ``fsync`` it, so they cost what a persistent run's commits cost (the timed model
charges one calibrated commit cost for both) and nothing is left behind, even after ``kill -9``.

Format 2: the line ``EXOMANIFEST2``, a little-endian u64 header length, the header (JSON: the layout and
its hash, the tier, slots and row size), a u64 entry count, the entries (a packed numpy record per block:
block id, slot, CRC-32C of the stored bytes, CRC-32C at birth, write sequence, error bound, lossless
flag) and a CRC-32 (zlib) of everything before it. Format 1 (``EXOMANIFEST1``) recorded CRC-32 block
checksums, which no block read now would match: it is refused in one sentence.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from exo_runtime.errors import DataDirError, DiskFullError
from exo_runtime.stores.base import Store
from exo_runtime.stores.file import NO_SPACE_ERRNOS

MAGIC = b"EXOMANIFEST2\n"
OLD_MAGICS = {b"EXOMANIFEST1\n": "format 1, with CRC-32 block checksums; this version checks CRC-32C"}
"""Earlier formats, refused with what changed."""
ENTRY = np.dtype(
    [
        ("block", "<i8"),
        ("slot", "<i8"),
        ("crc", "<u4"),
        ("birth_crc", "<u4"),
        ("seq", "<i8"),
        ("error_bound", "<f8"),
        ("lossless", "u1"),
    ]
)


class ManifestFull(DiskFullError, OSError):
    """A manifest commit failed for lack of space (see the module docstring).

    A run fault (:class:`~exo_runtime.errors.DiskFullError`, exit status 3) that is also the
    ``OSError`` it stems from (``errno``, ``strerror``), so a caller that undoes a batch on a full
    medium treats it as it treats a failed slab write.
    """

    def __init__(self, code: int, message: str) -> None:
        OSError.__init__(self, code, os.strerror(code))
        self.message = message

    def __str__(self) -> str:
        return self.message


def manifest_path(data_dir: Path, tier: str) -> Path:
    """Where tier ``tier``'s manifest lives."""
    return data_dir / f"{tier}.manifest"


def load_manifest(path: Path) -> tuple[dict[str, Any], np.ndarray]:
    """Read a manifest: its header and its entries (``ENTRY`` records).

    Raises:
        DataDirError: the file is not a complete exo manifest (one sentence naming it).
    """
    data = path.read_bytes()
    problem = None
    old = next((why for magic, why in OLD_MAGICS.items() if data.startswith(magic)), None)
    if old is not None:
        problem = f"was written by an earlier exo ({old})"
    elif not data.startswith(MAGIC) or len(data) < len(MAGIC) + 20:
        problem = "is not an exo manifest"
    elif zlib.crc32(data[:-4]) != struct.unpack("<I", data[-4:])[0]:
        problem = "fails its checksum (damaged)"
    if problem:
        raise DataDirError(f"manifest {path} {problem}; remove it or use another runtime.data_dir")
    try:
        pos = len(MAGIC)
        (hlen,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        header = json.loads(data[pos : pos + hlen].decode())
        pos += hlen
        (count,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        if not isinstance(header, dict) or pos + count * ENTRY.itemsize + 4 != len(data):
            raise ValueError("its entries do not fill it")
        entries = np.frombuffer(data, dtype=ENTRY, count=count, offset=pos).copy()
    except (ValueError, struct.error, UnicodeDecodeError) as err:  # a checksum that passes by chance
        raise DataDirError(
            f"manifest {path} is torn or damaged ({err}); remove it or use another runtime.data_dir"
        ) from None
    return header, entries


def _nameless(folder: Path) -> int:
    """A nameless file in ``folder`` (``O_TMPFILE``), or -1 where the filesystem has none."""
    tmpfile = getattr(os, "O_TMPFILE", 0)
    if not tmpfile:
        return -1
    try:
        return os.open(folder, os.O_WRONLY | tmpfile, 0o600)
    except OSError as err:
        if err.errno in (errno.EISDIR, errno.EOPNOTSUPP, errno.EINVAL):
            return -1
        raise


class Manifest:
    """The in-memory manifest of one durable store, committed on demand (see the module docstring).

    Args:
        path: the manifest file.
        header: layout facts written with every commit (``layout_hash`` among them).
        store: the durable store whose slots it describes.
    """

    def __init__(self, path: Path, header: dict[str, Any], store: Store) -> None:
        self.path = path
        self.header = header
        self.store = store
        self.entries: dict[int, tuple[int, int, int, int, float, bool]] = {}
        self.seq = 0
        self.commits = 0
        self.dirty = False

    def put(self, block: int, slot: int, crc: int, birth_crc: int, bound: float, lossless: bool) -> None:
        """Record that ``slot`` now holds ``block`` (durable at the next commit)."""
        self.seq += 1
        self.entries[block] = (slot, crc, birth_crc, self.seq, bound, lossless)
        self.dirty = True

    def remove(self, block: int) -> None:
        """Forget ``block`` (its slot may be reused once a commit without it is durable)."""
        if self.entries.pop(block, None) is not None:
            self.dirty = True

    def restore(self, block: int, entry: tuple[int, int, int, int, float, bool]) -> None:
        """Put back an entry exactly as it was (undoing a removal)."""
        self.entries[block] = entry
        self.dirty = True

    def commit(self) -> None:
        """Make the store's writes durable, then replace the manifest atomically; then reclaim slots."""
        self.store.sync()
        arr = np.empty(len(self.entries), dtype=ENTRY)
        for i, (block, (slot, crc, birth, seq, bound, lossless)) in enumerate(self.entries.items()):
            arr[i] = (block, slot, crc, birth, seq, bound, lossless)
        header = dict(self.header, commit=self.commits + 1)
        head = json.dumps(header, sort_keys=True).encode()
        body = MAGIC + struct.pack("<Q", len(head)) + head + struct.pack("<Q", len(arr)) + arr.tobytes()
        body += struct.pack("<I", zlib.crc32(body))
        tmp: Path | None = None
        if self.store.persistent:
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        else:
            fd = _nameless(self.path.parent)  # -1 where the filesystem has no O_TMPFILE: nothing written
        try:
            if fd >= 0:
                try:
                    view = memoryview(body)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as err:
            if tmp is not None:
                tmp.unlink(missing_ok=True)  # give its space back; the previous manifest stays
            if err.errno not in NO_SPACE_ERRNOS:
                raise
            where = f" ({self.path})" if self.store.persistent else ""
            raise ManifestFull(
                err.errno,
                f"committing the manifest of tier {self.store.name}{where} failed: "
                f"{err.strerror or os.strerror(err.errno)}; the run stopped, and the manifest on disk is the "
                "last one committed, every block of which is intact",
            ) from None
        if tmp is not None:
            os.replace(tmp, self.path)
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        self.commits += 1
        self.dirty = False
        self.store.reclaim()
