"""``repo_scan``: a codebase's files, chunked into blocks, read in batches of files, pass after pass.

The codebase is ``files`` files whose sizes in characters are log-normal (median
``file_chars_median``, shape ``file_chars_sigma``; 0 makes every file the median), at least 1 and at
most ``file_chars_max``. Text is chunked as the replaced system indexed it: ``chunk_chars``
characters (1024) make ``tokens_per_chunk`` tokens (256), so a file of ``c`` characters is
``ceil(c * tokens_per_chunk / chunk_chars)`` tokens, cut into ``block_tokens`` blocks (last one
partial). At ``block_tokens == tokens_per_chunk`` each chunk is one block.

Pseudocode::

    repeat passes times:
        order = a fresh random permutation of the files (shuffle) or file order
        for each batch of batch_files consecutive files in order:
            one request reads every block of those files, file by file, in order

File ``f``'s blocks have ids ``first[f] .. first[f] + blocks[f] - 1`` (files numbered in order).
Requests arrive as a Poisson process of ``request_rate_per_s``. Seeded and deterministic; memory
holds the codebase's file table, never the stream.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from exo_sim.blocksplit import whole_blocks
from exo_sim.config import WorkloadConfig
from exo_sim.errors import ConfigError
from exo_sim.workloads import register
from exo_sim.workloads.base import RequestChunk, Workload

CHUNK_REFS = 1 << 16


@dataclass
class RepoScanWorkloadConfig(WorkloadConfig):
    """A codebase scanned in batches of files, ``passes`` times (see the module docstring)."""

    kind: str = "repo_scan"
    files: int = 2000
    file_chars_median: int = 4096
    file_chars_sigma: float = 1.0
    file_chars_max: int = 1_000_000
    chunk_chars: int = 1024
    tokens_per_chunk: int = 256
    batch_files: int = 16
    passes: int = 3
    shuffle: bool = True
    request_rate_per_s: float = 10.0
    seed: int = 0


@register
class RepoScanWorkload(Workload):
    """Seeded repository scan (see the module docstring)."""

    kind = "repo_scan"
    schema = RepoScanWorkloadConfig

    def validate(self) -> None:
        """Refuse non-positive sizes and rates, a negative sigma and a median above the maximum."""
        c = self.cfg
        for key in (
            "files",
            "file_chars_median",
            "file_chars_max",
            "chunk_chars",
            "tokens_per_chunk",
            "batch_files",
            "passes",
        ):
            if getattr(c, key) <= 0:
                raise ConfigError(f"workload.{key}", f"must be > 0, got {getattr(c, key)}")
        if c.file_chars_sigma < 0:
            raise ConfigError("workload.file_chars_sigma", f"must be >= 0, got {c.file_chars_sigma}")
        if c.file_chars_median > c.file_chars_max:
            raise ConfigError(
                "workload.file_chars_median",
                f"is {c.file_chars_median}, above workload.file_chars_max ({c.file_chars_max})",
            )
        if not c.request_rate_per_s > 0:
            raise ConfigError("workload.request_rate_per_s", f"must be > 0, got {c.request_rate_per_s}")

    def file_chars(self) -> np.ndarray:
        """Characters of each file (deterministic for the seed)."""
        c = self.cfg
        rng = np.random.default_rng(np.random.SeedSequence(int(c.seed)).spawn(3)[0])
        sigma = float(c.file_chars_sigma)
        raw = rng.lognormal(math.log(int(c.file_chars_median)), sigma, int(c.files)) if sigma else (
            np.full(int(c.files), float(c.file_chars_median))
        )
        return np.clip(np.ceil(raw), 1, int(c.file_chars_max)).astype(np.int64)

    def file_blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """``(blocks per file, tokens of every block in file order)``."""
        c = self.cfg
        tokens = -(-self.file_chars() * int(c.tokens_per_chunk) // int(c.chunk_chars))
        return whole_blocks(tokens, self.block_tokens)

    def estimated_refs(self) -> int:
        """Exact number of block references."""
        counts, _ = self.file_blocks()
        return int(counts.sum()) * int(self.cfg.passes)

    def chunks(self) -> Iterator[RequestChunk]:
        """Yield one request per batch of files, pass after pass."""
        c = self.cfg
        counts, tokens = self.file_blocks()
        first = np.cumsum(counts) - counts
        n_files, per = int(c.files), int(c.batch_files)
        _, order_rng, arrival_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(int(c.seed)).spawn(3)
        )
        gap = 1.0 / float(c.request_rate_per_s)
        t0 = 0.0
        batches_per_chunk = max(1, CHUNK_REFS // max(1, per * int(np.ceil(counts.mean()))))
        for _ in range(int(c.passes)):
            order = order_rng.permutation(n_files) if c.shuffle else np.arange(n_files)
            for start in range(0, n_files, per * batches_per_chunk):
                files = order[start : start + per * batches_per_chunk]
                n_req = -(-files.shape[0] // per)
                fc = counts[files]
                # block ids and tokens of the chosen files, file after file
                total = int(fc.sum())
                starts = np.cumsum(fc) - fc
                local = np.arange(total, dtype=np.int64) - np.repeat(starts, fc)
                blocks = np.repeat(first[files], fc) + local
                file_ends = np.concatenate(([0], np.cumsum(fc)))
                offsets = file_ends[np.minimum(np.arange(n_req + 1) * per, files.shape[0])]
                arrivals = t0 + np.cumsum(arrival_rng.exponential(gap, n_req))
                t0 = float(arrivals[-1])
                yield RequestChunk(
                    arrival_s=arrivals,
                    offsets=offsets.astype(np.int64),
                    blocks=blocks,
                    writes=np.zeros(total, dtype=bool),
                    tokens=tokens[blocks],
                )

    def describe(self) -> dict[str, Any]:
        """Kind, parameters and the codebase's size in blocks."""
        c = self.cfg
        counts, _ = self.file_blocks()
        return {
            "kind": self.kind,
            "files": int(c.files),
            "codebase_blocks": int(counts.sum()),
            "batch_files": int(c.batch_files),
            "passes": int(c.passes),
            "shuffle": bool(c.shuffle),
            "seed": int(c.seed),
        }
