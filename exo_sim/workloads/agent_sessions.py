"""``agent_sessions``: many concurrent multi-turn agent sessions whose context grows every turn.

A session's context is one stream of tokens (the shared prefix, then every turn's tokens), cut into
blocks of ``block_tokens`` as a serving engine's KV cache cuts it: a block is cached (has an id that
later turns find) only once it is full, so only the stream's last block is ever partial. Pseudocode::

    prefix = floor(prefix_tokens / block_tokens) shared full blocks (ids 0..P-1; system prompt, tools)
    each session's stream starts with the prefix's remaining prefix_tokens % block_tokens tokens
    start min(concurrency, sessions) sessions; each draws turns ~ U{turns_min..turns_max}
    while sessions are active:
        s = an active session, uniformly at random            (one request = one turn of s)
        x ~ U{turn_tokens_min..turn_tokens_max} new tokens
        read  the prefix blocks, then all of s's full blocks so far, in order (full: block_tokens each)
        write the full blocks that the stream's partial tail plus the x new tokens complete
              (new ids; what is left, fewer than block_tokens, stays the stream's tail)
        if s has taken its turns: it ends, and the next session (if any) starts in its place

The tail's tokens are computed with the turn that completes their block, once (a prompt's partial
last block is never cached, so a server recomputes it anyway). A turn that neither reads a full block
nor completes one (a stream still shorter than a block) reads its tail as one partial block, under an
id of its own. New blocks are numbered in order of creation from ``P`` up and written with
``writes=True`` (computed by the turn, so they are not read misses). Requests arrive as a Poisson
process of ``request_rate_per_s``; ``session_ids`` carries each request's session. Seeded and
deterministic; memory holds only the active sessions' contexts, never the whole stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from exo_sim.config import WorkloadConfig
from exo_sim.errors import ConfigError
from exo_sim.workloads import register
from exo_sim.workloads.base import RequestChunk, Workload

CHUNK_REFS = 1 << 16


@dataclass
class AgentSessionsWorkloadConfig(WorkloadConfig):
    """Concurrent agent sessions re-reading their growing context each turn (see the module)."""

    kind: str = "agent_sessions"
    sessions: int = 1000
    concurrency: int = 32
    turns_min: int = 4
    turns_max: int = 40
    turn_tokens_min: int = 256
    turn_tokens_max: int = 4096
    prefix_tokens: int = 2048
    request_rate_per_s: float = 10.0
    seed: int = 0


@register
class AgentSessionsWorkload(Workload):
    """Seeded agent sessions (see the module docstring)."""

    kind = "agent_sessions"
    schema = AgentSessionsWorkloadConfig
    chained = True

    def validate(self) -> None:
        """Refuse non-positive counts and rates, negative prefixes and min > max ranges."""
        c = self.cfg
        for key in ("sessions", "concurrency", "turns_min", "turn_tokens_min"):
            if getattr(c, key) <= 0:
                raise ConfigError(f"workload.{key}", f"must be > 0, got {getattr(c, key)}")
        for lo, hi in (("turns_min", "turns_max"), ("turn_tokens_min", "turn_tokens_max")):
            if getattr(c, hi) < getattr(c, lo):
                raise ConfigError(
                    f"workload.{hi}", f"is {getattr(c, hi)}, below workload.{lo} ({getattr(c, lo)})"
                )
        if c.prefix_tokens < 0:
            raise ConfigError("workload.prefix_tokens", f"must be >= 0, got {c.prefix_tokens}")
        if not c.request_rate_per_s > 0:
            raise ConfigError("workload.request_rate_per_s", f"must be > 0, got {c.request_rate_per_s}")

    @property
    def prefix_blocks(self) -> int:
        """Full blocks of the shared prefix (its remaining tokens start each session's own stream)."""
        return int(self.cfg.prefix_tokens) // self.block_tokens

    def chunks(self) -> Iterator[RequestChunk]:
        """Yield turns of the active sessions, about ``CHUNK_REFS`` references per chunk."""
        c = self.cfg
        bt = self.block_tokens
        turns_rng, pick_rng, tokens_rng, arrival_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(int(c.seed)).spawn(4)
        )
        n_prefix = self.prefix_blocks
        prefix = list(range(n_prefix))
        prefix_tokens = [bt] * n_prefix
        tail0 = int(c.prefix_tokens) - n_prefix * bt
        next_block = n_prefix
        started = 0
        # active sessions: [session id, turns left, full block ids, tokens in the stream's tail]
        active: list[list[Any]] = []

        def start() -> None:
            nonlocal started
            turns = int(turns_rng.integers(int(c.turns_min), int(c.turns_max) + 1))
            active.append([started, turns, [], tail0])
            started += 1

        while started < min(int(c.concurrency), int(c.sessions)):
            start()
        gap = 1.0 / float(c.request_rate_per_s)
        t = 0.0
        blocks: list[int] = []
        tokens: list[int] = []
        writes: list[bool] = []
        offsets = [0]
        sessions: list[int] = []
        arrivals: list[float] = []
        while active:
            slot = int(pick_rng.integers(len(active)))
            sess = active[slot]
            sid, _, ctx, tail = sess
            x = int(tokens_rng.integers(int(c.turn_tokens_min), int(c.turn_tokens_max) + 1))
            n_new, sess[3] = divmod(tail + x, bt)
            n_read = n_prefix + len(ctx)
            blocks += prefix
            blocks += ctx
            tokens += prefix_tokens
            tokens += [bt] * len(ctx)
            if n_read == 0 and n_new == 0:  # a stream still shorter than a block: its tail, uncacheable
                blocks.append(next_block)
                tokens.append(tail + x)
                next_block += 1
                n_read = 1
            new = list(range(next_block, next_block + n_new))
            next_block += n_new
            blocks += new
            tokens += [bt] * n_new
            writes += [False] * n_read
            writes += [True] * n_new
            ctx += new
            offsets.append(len(blocks))
            sessions.append(sid)
            t += float(arrival_rng.exponential(gap))
            arrivals.append(t)
            sess[1] -= 1
            if sess[1] == 0:
                active.pop(slot)
                if started < int(c.sessions):
                    start()
            if len(blocks) >= CHUNK_REFS or not active:
                yield RequestChunk(
                    arrival_s=np.asarray(arrivals, dtype=np.float64),
                    offsets=np.asarray(offsets, dtype=np.int64),
                    blocks=np.asarray(blocks, dtype=np.int64),
                    writes=np.asarray(writes, dtype=bool),
                    tokens=np.asarray(tokens, dtype=np.int64),
                    session_ids=np.asarray(sessions, dtype=np.int64),
                )
                blocks, tokens, writes, offsets, sessions, arrivals = [], [], [], [0], [], []

    def describe(self) -> dict[str, Any]:
        """Kind and parameters."""
        c = self.cfg
        out: dict[str, Any] = {"kind": self.kind}
        for key in (
            "sessions",
            "concurrency",
            "turns_min",
            "turns_max",
            "turn_tokens_min",
            "turn_tokens_max",
            "prefix_tokens",
            "seed",
        ):
            out[key] = int(getattr(c, key))
        out["prefix_blocks"] = self.prefix_blocks
        return out
