"""The runtime's user-facing errors: one sentence each, raised before work starts or as a run's fault.

Setup problems (a config that does not fit this machine, a medium this machine lacks, a directory that
is not writable, a manifest from another config) raise :class:`~exo_sim.errors.ExoError`
(exit status 2), like every bad input. Faults met during a run (a full disk, blocks found corrupted or lost)
exit with status 3, after the run's results were written with what happened.
"""

from __future__ import annotations

from exo_sim.errors import ExoError


class MachineError(ExoError):
    """The config asks for something this machine does not have (a GPU, memory, disk space)."""


class DataDirError(ExoError):
    """The runtime's data directory is unusable: not writable, or holding another config's blocks."""


class RunFault(ExoError):
    """A fault met during a run; the results were written, with ``complete`` telling whether it ended."""

    exit_code = 3


class DiskFullError(RunFault):
    """A write to a file tier failed for lack of space (ENOSPC, EFBIG, EDQUOT)."""


class IntegrityFault(RunFault):
    """Blocks were found corrupted on read, or lost on resume; none was served."""


class Interrupted(ExoError):
    """The run was interrupted (Ctrl-C): the message says what was kept and what was removed."""

    exit_code = 130
