"""``file``: one pre-allocated file on the NVMe drive, positioned reads and writes with ``O_DIRECT``.

Page-cache control: **O_DIRECT**. The alternative, buffered I/O followed by
``posix_fadvise(DONTNEED)``, cannot promise that a read comes from the drive: ``DONTNEED`` does not
drop dirty pages (so a block written moments ago is read back from RAM until writeback finishes),
and read-ahead pulls neighbouring slots into the cache behind the runtime's back. ``O_DIRECT`` moves
every byte between the drive and the staging row itself, so a "read from NVMe" is measured as one.
Its price is alignment: every slot starts on a 4096-byte boundary of the file (``row_bytes`` is the
block rounded up to :data:`~exo_sim.spec.FILE_ROW_BYTES`), staging rows are 4096-aligned, and
transfers are whole rows.

Capacity: the slab — rows, padding and spares — fits in the tier's ``capacity_bytes``. Blocks are not
packed several to a row: a row shared by two blocks would need a read-modify-write under O_DIRECT, and
a write torn mid-row could damage a neighbour that a committed manifest names. The padding is counted
instead: the plan's ``capacity_blocks`` is :func:`exo_sim.spec.blocks_in` of the tier's bytes, the most
blocks whose rows plus spare rows fit, and this store sizes its slab with the same functions
(:func:`exo_sim.spec.row_bytes`, :func:`exo_sim.spec.slab_slots`), so the two agree by construction.

Layout: slot ``i`` at offset ``i * row_bytes``, pre-allocated with ``posix_fallocate`` so that no write
of a run ever needs a new extent. The slab has ``capacity_blocks`` slots plus a few spares
(``runtime.file_spare_fraction``, at least 8): a freed slot is not reused until a manifest that no
longer names its block is durable (:meth:`FileStore.reclaim`), so every block a committed manifest
names is intact on disk whenever the process dies. Runs of consecutive slots are read and written with
one ``preadv``/``pwritev`` each, up to ``runtime.file_io_threads`` of them in flight at once (the calls
release the GIL): a drive reaches its bandwidth only with a queue deeper than one. Free slots are handed
out lowest first, so that a batch's writes land in runs of consecutive slots when the free space allows.

Lifetime: a slab kept for a later ``resume`` (``StoreSettings.persist``: ``exo-run`` with
``runtime.data_dir``) is the file ``<data_dir>/<tier>.slab`` and stays, by design. Any other slab never
has a name: it is opened with ``O_TMPFILE`` in ``data_dir`` (where the filesystem lacks ``O_TMPFILE``,
created under a unique hidden name and unlinked at once, a window of one system call), so its blocks
go back to the filesystem when the process ends, however it ends — ``kill -9`` and a timeout included.
Nothing is left to clean up at the next start.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from exo_runtime.buffers import ALIGN_BYTES
from exo_runtime.errors import DataDirError, MachineError
from exo_runtime.stores import register
from exo_runtime.stores.base import Footprint, Store, StoreSettings, runs
from exo_sim.spec import FILE_ROW_BYTES, FILE_SPARE_SLOTS_MIN, TierSpec, row_bytes, slab_slots
from exo_sim.spec import spare_slots as medium_spare_slots

assert FILE_ROW_BYTES % ALIGN_BYTES == 0, "file rows must keep staging rows aligned for O_DIRECT"

SPARE_SLOTS_MIN = FILE_SPARE_SLOTS_MIN
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
"""Errors that mean the medium is full (EFBIG: a file-size limit, as RLIMIT_FSIZE imposes)."""


def spare_slots(capacity_blocks: int, fraction: float) -> int:
    """Copy-on-write spares a file tier of ``capacity_blocks`` keeps."""
    return medium_spare_slots("file", capacity_blocks, fraction)


@register
class FileStore(Store):
    """A slab file read and written with ``O_DIRECT`` (see the module docstring)."""

    medium = "file"
    row_align = ALIGN_BYTES
    durable = True
    description = "pre-allocated file, O_DIRECT positioned I/O (no page cache)"

    def __init__(self, tier: TierSpec, settings: StoreSettings) -> None:
        super().__init__(tier, settings)
        self._pending_free: list[int] = []
        self._pool = ThreadPoolExecutor(settings.io_threads) if settings.io_threads > 1 else None
        self.persistent = settings.persist
        self.size_bytes = self.slots * self.row_bytes
        if settings.persist:
            self.path = settings.data_dir / f"{tier.name}.slab"
            self.fd = self._open(self.path, os.O_CREAT, settings)
        else:
            self.path = settings.data_dir  # the slab has no name of its own
            self.fd = self._open_nameless(settings)
        try:
            st = os.fstat(self.fd)
            if st.st_size < self.size_bytes or st.st_blocks * 512 < self.size_bytes:
                os.posix_fallocate(self.fd, 0, self.size_bytes)
        except OSError as err:
            os.close(self.fd)
            raise MachineError(
                f"cannot reserve {self.size_bytes} bytes for tier {self.name} in {self.path}: "
                f"{err.strerror}"
            ) from None

    def _open(self, path: os.PathLike[str] | str, extra: int, settings: StoreSettings) -> int:
        """``open(path, O_RDWR | O_DIRECT | extra)``; :class:`DataDirError` in one sentence if refused."""
        flags = os.O_RDWR | os.O_DIRECT | getattr(os, "O_CLOEXEC", 0) | extra
        try:
            return os.open(path, flags, 0o644 if self.persistent else 0o600)
        except OSError as err:
            if err.errno == errno.EINVAL:
                raise DataDirError(
                    f"runtime.data_dir {settings.data_dir} is on a filesystem without O_DIRECT; "
                    "put it on a local disk"
                ) from None
            raise DataDirError(f"cannot open a slab file in {settings.data_dir}: {err.strerror}") from None

    def _open_nameless(self, settings: StoreSettings) -> int:
        """A slab file with no name in ``data_dir`` (see "Lifetime" in the module docstring)."""
        tmpfile = getattr(os, "O_TMPFILE", 0)
        if tmpfile:
            try:
                return self._open(settings.data_dir, tmpfile, settings)
            except DataDirError:
                # EISDIR / EOPNOTSUPP: no O_TMPFILE here; EINVAL: maybe no O_DIRECT (the fallback says which)
                pass
        name = settings.data_dir / f".{self.name}.slab.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        fd = self._open(name, os.O_CREAT | os.O_EXCL, settings)
        os.unlink(name)
        return fd

    @classmethod
    def physical_slots(cls, tier: TierSpec, settings: StoreSettings) -> int:
        """The tier's blocks plus copy-on-write spares (:func:`exo_sim.spec.slab_slots`)."""
        return slab_slots(cls.medium, tier.capacity_blocks, settings.spare_fraction)

    @classmethod
    def row_bytes_for(cls, slot_bytes: int) -> int:
        """Whole 4096-byte rows (:func:`exo_sim.spec.row_bytes`): ``O_DIRECT`` transfers whole aligned rows."""
        return row_bytes(cls.medium, slot_bytes)

    @classmethod
    def footprint(cls, tier: TierSpec, settings: StoreSettings) -> Footprint:
        """Disk space of the whole slab file (spares and alignment padding included)."""
        return Footprint(disk_bytes=cls.physical_slots(tier, settings) * cls.row_bytes_for(tier.block_bytes))

    # ------------------------------------------------------------------ copy-on-write slot reuse
    def _release(self, slot: int) -> None:
        self._pending_free.append(slot)

    def _pending(self) -> int:
        return len(self._pending_free)

    @property
    def pending_slots(self) -> int:
        """Slots freed since the last :meth:`reclaim` (not reusable yet)."""
        return len(self._pending_free)

    def reclaim(self) -> None:
        """Make the slots freed before the last manifest commit reusable (lowest handed out first)."""
        if self._pending_free:
            self._free.extend(self._pending_free)
            self._free.sort(reverse=True)
            self._pending_free.clear()

    # ------------------------------------------------------------------ bytes
    def _iov(self, rows: torch.Tensor) -> tuple[memoryview, int]:
        stride = rows.shape[1]
        if stride % ALIGN_BYTES or rows.data_ptr() % ALIGN_BYTES or not rows.is_contiguous():
            raise ValueError("file tier staging rows must be contiguous and 4096-aligned")
        arr: Any = rows.numpy()
        return memoryview(arr).cast("B"), stride

    def _each_run(self, slots: Sequence[int], call: Callable[[tuple[int, int, int]], None]) -> None:
        todo = self._io_runs(slots)
        if self._pool is None or len(todo) == 1:
            for run in todo:
                call(run)
            return
        for future in [self._pool.submit(call, run) for run in todo]:
            future.result()  # re-raises the first failure

    def read(self, slots: Sequence[int], rows: torch.Tensor) -> None:
        """One ``preadv`` per run of consecutive slots (at most IOV_MAX rows each), several at once."""
        mv, stride = self._iov(rows)
        rb, fd = self.row_bytes, self.fd

        def one(run: tuple[int, int, int]) -> None:
            i, s, r = run
            bufs = [mv[(i + j) * stride : (i + j) * stride + rb] for j in range(r)]
            got = os.preadv(fd, bufs, s * rb)
            if got != r * rb:
                raise OSError(errno.EIO, f"short read of {got} bytes from {self.path} slot {s}")

        self._each_run(slots, one)

    def write(self, slots: Sequence[int], rows: torch.Tensor) -> None:
        """One ``pwritev`` per run of consecutive slots, several at once.

        A short write (the medium took part of a run) is retried for the rest, to raise its reason.
        """
        mv, stride = self._iov(rows)
        rb, fd = self.row_bytes, self.fd

        def one(run: tuple[int, int, int]) -> None:
            i, s, r = run
            bufs = [mv[(i + j) * stride : (i + j) * stride + rb] for j in range(r)]
            done = os.pwritev(fd, bufs, s * rb)
            if done != r * rb:  # the medium took part of it: retrying the rest raises the reason
                whole, part = divmod(done, rb)
                rest = [mv[(i + j) * stride : (i + j) * stride + rb] for j in range(whole, r)]
                rest[0] = rest[0][part:]
                more = os.pwritev(fd, rest, s * rb + done)
                if done + more != r * rb:
                    raise OSError(errno.ENOSPC, f"short write to {self.path} slot {s}")

        self._each_run(slots, one)

    @staticmethod
    def _io_runs(slots: Sequence[int]) -> list[tuple[int, int, int]]:
        out = []
        for i, s, r in runs(slots):
            for k in range(0, r, _IOV_MAX):
                out.append((i + k, s + k, min(_IOV_MAX, r - k)))
        return out

    def sync(self) -> None:
        """``fdatasync``: every write so far is on the drive.

        O_DIRECT skips the page cache, not the drive's own volatile cache; this flushes that too.
        """
        os.fdatasync(self.fd)

    def close(self) -> None:
        """Close the file: a persistent slab stays on disk for a later ``resume``; a nameless one is gone."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def describe(self) -> dict[str, object]:
        """Facts for the summary, the file's path and size included."""
        out = super().describe()
        out.update(
            {
                "path": str(self.path),
                "file_bytes": self.size_bytes,
                "io": "O_DIRECT",
                "persistent": self.persistent,
            }
        )
        return out
