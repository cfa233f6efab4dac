"""``mooncake``: Mooncake's JSONL request traces (FAST'25 release), streamed.

One request a line: ``{"timestamp": ms, "input_length": tokens, "output_length": tokens,
"hash_ids": [int, ...]}``. Each hash id names one prefix block of ``trace_block_tokens`` (512) tokens;
equal ids are the same KV blocks, so reuse across requests is in the ids themselves.

A request reads its ``hash_ids`` in order (a block that is not resident is computed and inserted: the
hierarchy does that on a read miss); its timestamp is its arrival (``arrival_s`` = ms / 1000). The
last block is partial when ``input_length`` is not a multiple of 512 and carries fewer ``tokens``.
With ``write_output`` on, the request then writes ``ceil(output_length / block_tokens)`` new blocks
(``writes=True``) whose ids start at :data:`~exo_sim.blocksplit.FRESH_ID_BASE` and never meet a hash
id; it is off by default, since a later turn names the blocks it reuses by hash id.

Blocks are replayed at the run's ``block_tokens`` by :class:`~exo_sim.blocksplit.BlockSplit` (512 ->
256 gives each hash id two blocks). At ``block_tokens == trace_block_tokens`` every hash id is one
block with its own id; ``experiment=single_tier`` sets that, so its ``capacity_blocks`` counts hash ids.

Scaling to a small machine (the cross-check's suites): ``token_scale = s`` makes one run token stand
for ``s`` trace tokens — a request of ``input_length`` tokens becomes ``ceil(input_length / s)``,
each hash id ``trace_block_tokens / s`` tokens — so the prefix structure (which requests share which
hash ids) is the trace's exactly while prompts are ``s`` times shorter. ``time_scale = f`` multiplies
every timestamp (``f < 1`` compresses the trace: more load). Both default to 1: the trace as recorded.

Every line is checked: valid JSON, the four fields, non-negative integer lengths, timestamps in
order, ``len(hash_ids) == ceil(input_length / trace_block_tokens)``, integer hash ids in range. The
first bad line stops the stream with a :class:`~exo_sim.errors.TraceError` naming the file and line.
Lines are read ``CHUNK_LINES`` at a time, so memory does not grow with the trace.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from omegaconf import MISSING

from exo_sim.blocksplit import FRESH_ID_BASE, BlockSplit, whole_blocks
from exo_sim.config import WorkloadConfig
from exo_sim.errors import ConfigError, TraceError
from exo_sim.workloads import register
from exo_sim.workloads.base import RequestChunk, Workload

CHUNK_LINES = 2048
FIELDS = ("timestamp", "input_length", "output_length", "hash_ids")
_INT_TYPE = {int}


@dataclass
class MooncakeWorkloadConfig(WorkloadConfig):
    """A Mooncake JSONL trace; its blocks are split to the run's ``block_tokens``."""

    kind: str = "mooncake"
    path: str = MISSING
    trace_block_tokens: int = 512
    write_output: bool = False
    max_requests: Optional[int] = None
    token_scale: int = 1
    time_scale: float = 1.0


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@register
class MooncakeWorkload(Workload):
    """Reader of Mooncake JSONL traces (see the module docstring)."""

    kind = "mooncake"
    schema = MooncakeWorkloadConfig
    chained = True

    def validate(self) -> None:
        """Refuse a missing or empty file, bad sizes and a block size that does not divide the trace's."""
        c = self.cfg
        src = int(c.trace_block_tokens)
        if src <= 0:
            raise ConfigError("workload.trace_block_tokens", f"must be > 0, got {src}")
        if src % self.block_tokens:
            raise ConfigError(
                "block_tokens",
                f"is {self.block_tokens}, which does not divide workload.trace_block_tokens ({src}); "
                "trace blocks are split into whole run blocks",
            )
        if c.max_requests is not None and c.max_requests <= 0:
            raise ConfigError("workload.max_requests", f"must be > 0, got {c.max_requests}")
        scale = int(c.token_scale)
        if scale < 1 or src % scale:
            raise ConfigError(
                "workload.token_scale",
                f"is {c.token_scale}; it must be a whole number >= 1 dividing workload.trace_block_tokens ({src})",
            )
        if (src // scale) % self.block_tokens:
            raise ConfigError(
                "block_tokens",
                f"is {self.block_tokens}, which does not divide a hash id's {src // scale} tokens "
                f"(workload.trace_block_tokens {src} / workload.token_scale {scale})",
            )
        if not (math.isfinite(float(c.time_scale)) and float(c.time_scale) > 0):
            raise ConfigError("workload.time_scale", f"must be a number > 0, got {c.time_scale}")
        path = str(c.path)
        if not os.path.isfile(path):
            raise TraceError(path, "no such file (set workload.path)")
        if os.path.getsize(path) == 0:
            raise TraceError(path, "the file is empty")

    @property
    def splitter(self) -> BlockSplit:
        """The trace-to-run block conversion."""
        return BlockSplit(int(self.cfg.trace_block_tokens) // int(self.cfg.token_scale), self.block_tokens)

    def chunks(self) -> Iterator[RequestChunk]:
        """Yield the trace's requests, ``CHUNK_LINES`` lines at a time (see the module docstring)."""
        path = str(self.cfg.path)
        limit = self.cfg.max_requests
        src = int(self.cfg.trace_block_tokens)
        split = self.splitter
        fresh = [FRESH_ID_BASE]
        last_ts = 0.0
        first_line = 1
        ts: list[float] = []
        inputs: list[int] = []
        outputs: list[int] = []
        counts: list[int] = []
        flat: list[Any] = []
        n = 0
        with open(path, "rb") as f:
            for line_no, line in enumerate(f, 1):
                if limit is not None and n >= limit:
                    break
                if not line.strip():
                    raise TraceError(path, "is empty; JSONL needs one JSON object per line", line_no)
                try:
                    obj = json.loads(line)
                except ValueError as err:
                    raise TraceError(path, f"is not valid JSON ({err})", line_no) from None
                if not isinstance(obj, dict):
                    raise TraceError(path, f"is a JSON {type(obj).__name__}, not an object", line_no)
                missing = [k for k in FIELDS if k not in obj]
                if missing:
                    raise TraceError(path, f"has no field {', '.join(map(repr, missing))}", line_no)
                t, inp, out, ids = obj["timestamp"], obj["input_length"], obj["output_length"], obj["hash_ids"]
                if not (_is_int(t) or (isinstance(t, float) and math.isfinite(t))) or t < 0:
                    raise TraceError(path, f"timestamp {t!r} is not a number of ms >= 0", line_no)
                if t < last_ts:
                    raise TraceError(
                        path,
                        f"timestamp {t} ms is earlier than the previous request's {last_ts} ms; "
                        "requests must be in arrival order",
                        line_no,
                    )
                last_ts = t
                for key, value in (("input_length", inp), ("output_length", out)):
                    if not _is_int(value) or value < 0:
                        raise TraceError(path, f"{key} {value!r} is not an integer >= 0", line_no)
                if not isinstance(ids, list):
                    raise TraceError(path, f"hash_ids is a {type(ids).__name__}, not a list", line_no)
                if ids and set(map(type, ids)) != _INT_TYPE:  # type(), so True is refused too
                    bad = next(x for x in ids if type(x) is not int)
                    raise TraceError(path, f"hash id {bad!r} is not an integer", line_no)
                want = -(-inp // src)
                if len(ids) != want:
                    raise TraceError(
                        path,
                        f"has {len(ids)} hash_ids but input_length {inp} needs ceil({inp} / {src}) = {want}",
                        line_no,
                    )
                ts.append(t)
                inputs.append(inp)
                outputs.append(out)
                counts.append(len(ids))
                flat.extend(ids)
                n += 1
                if len(ts) == CHUNK_LINES:
                    yield self._chunk(path, first_line, ts, inputs, outputs, counts, flat, split, fresh)
                    first_line = line_no + 1
                    ts, inputs, outputs, counts, flat = [], [], [], [], []
        if ts:
            yield self._chunk(path, first_line, ts, inputs, outputs, counts, flat, split, fresh)

    def _chunk(
        self,
        path: str,
        first_line: int,
        ts: list[float],
        inputs: list[int],
        outputs: list[int],
        counts: list[int],
        flat: list[Any],
        split: BlockSplit,
        fresh: list[int],
    ) -> RequestChunk:
        """Turn a chunk's parsed lines into columns (ids checked, split, outputs appended)."""
        src_offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=src_offsets[1:])

        def line_of(ref: int) -> int:
            return first_line + int(np.searchsorted(src_offsets, ref, side="right")) - 1

        hashes = np.array(flat) if flat else np.zeros(0, dtype=np.int64)
        if hashes.dtype.kind not in "iu":  # integers beyond 64 bits: find the culprit, line by line
            for i in range(len(counts)):
                for x in flat[src_offsets[i] : src_offsets[i + 1]]:
                    if not 0 <= x < split.id_limit:
                        raise TraceError(path, f"hash id {x} is outside 0..{split.id_limit - 1}", first_line + i)
        bad = (hashes < 0) | (hashes >= split.id_limit)
        if bad.any():
            i = int(np.argmax(bad))
            raise TraceError(
                path, f"hash id {hashes[i]} is outside 0..{split.id_limit - 1}", line_of(i)
            )
        scale = int(self.cfg.token_scale)
        run_inputs = -(-np.asarray(inputs, dtype=np.int64) // scale)
        _, src_tokens = whole_blocks(run_inputs, int(self.cfg.trace_block_tokens) // scale)
        ids, tokens, per_src = split.split(hashes.astype(np.int64), src_tokens)
        read_offsets = split.offsets(src_offsets, per_src)
        arrival_s = np.asarray(ts, dtype=np.float64) * (float(self.cfg.time_scale) / 1000.0)
        if not self.cfg.write_output:
            return RequestChunk(
                arrival_s=arrival_s,
                offsets=read_offsets,
                blocks=ids,
                writes=np.zeros(ids.shape[0], dtype=bool),
                tokens=tokens,
            )
        n_out, out_tokens = whole_blocks(-(-np.asarray(outputs, dtype=np.int64) // scale), self.block_tokens)
        n_read = np.diff(read_offsets)
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(n_read + n_out, out=offsets[1:])
        total = int(offsets[-1])
        blocks = np.empty(total, dtype=np.int64)
        all_tokens = np.empty(total, dtype=np.int64)
        writes = np.zeros(total, dtype=bool)
        read_pos = np.arange(ids.shape[0]) - np.repeat(read_offsets[:-1], n_read) + np.repeat(
            offsets[:-1], n_read
        )
        w_off = np.cumsum(n_out) - n_out
        write_pos = (
            np.arange(out_tokens.shape[0])
            - np.repeat(w_off, n_out)
            + np.repeat(offsets[:-1] + n_read, n_out)
        )
        blocks[read_pos] = ids
        all_tokens[read_pos] = tokens
        start = fresh[0]
        blocks[write_pos] = np.arange(start, start + out_tokens.shape[0], dtype=np.int64)
        fresh[0] = start + int(out_tokens.shape[0])
        all_tokens[write_pos] = out_tokens
        writes[write_pos] = True
        return RequestChunk(
            arrival_s=arrival_s, offsets=offsets, blocks=blocks, writes=writes, tokens=all_tokens
        )

    def describe(self) -> dict[str, Any]:
        """Kind, path and the block conversion."""
        c = self.cfg
        return {
            "kind": self.kind,
            "path": str(c.path),
            "trace_block_tokens": int(c.trace_block_tokens),
            "block_tokens": self.block_tokens,
            "blocks_per_hash_id": self.splitter.factor,
            "write_output": bool(c.write_output),
            "max_requests": c.max_requests,
            "token_scale": int(c.token_scale),
            "time_scale": float(c.time_scale),
        }
